// Package faultnet is an in-process TCP proxy that breaks the network between a client and a
// server on command, for fault tests: cut (refuse and close every connection), blackhole one
// direction (nothing gets through, as when packets vanish: the sender's writes pile up in its
// socket buffers and then block, and nothing is lost or corrupted if the link heals before
// either side gives up, since TCP would retransmit), delay (every chunk is held for a while),
// and reset (every connection is closed with an RST).
package faultnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// Direction is one way through the proxy.
type Direction int

// Directions.
const (
	Up   Direction = iota // client to server
	Down                  // server to client
)

// Proxy forwards connections from its listener to a target.
type Proxy struct {
	l      net.Listener
	target string

	mu        sync.Mutex
	cut       bool
	blackhole [2]bool
	delay     time.Duration
	conns     map[*link]struct{}
	wg        sync.WaitGroup
	closed    bool
}

type link struct{ client, server *net.TCPConn }

// Listen starts a proxy on a free loopback port that forwards to target (host:port).
func Listen(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// URL is the proxy as an MQTT broker URL.
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			abort(c.(*net.TCPConn))
			continue
		}
		p.mu.Unlock()
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			abort(c.(*net.TCPConn))
			continue
		}
		lk := &link{client: c.(*net.TCPConn), server: s.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			abort(lk.client)
			abort(lk.server)
			continue
		}
		p.conns[lk] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(lk, lk.client, lk.server, Up)
		go p.pump(lk, lk.server, lk.client, Down)
	}
}

// pump copies from one side to the other, applying the current faults to each chunk.
func (p *Proxy) pump(lk *link, from, to *net.TCPConn, dir Direction) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			delay := p.delay
			p.mu.Unlock()
			if delay > 0 {
				time.Sleep(delay)
			}
			if !p.hold(lk, dir) {
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if err == io.EOF {
				to.CloseWrite()
			} else {
				p.drop(lk, false)
			}
			return
		}
	}
}

// hold waits while dir is blackholed; it reports false if the link was dropped meanwhile. The
// pump stops reading while it holds, so the sender's socket buffers fill up.
func (p *Proxy) hold(lk *link, dir Direction) bool {
	for {
		p.mu.Lock()
		_, alive := p.conns[lk]
		on := p.blackhole[dir]
		p.mu.Unlock()
		if !alive {
			return false
		}
		if !on {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drop closes a link, with an RST if reset.
func (p *Proxy) drop(lk *link, reset bool) {
	p.mu.Lock()
	delete(p.conns, lk)
	p.mu.Unlock()
	if reset {
		abort(lk.client)
		abort(lk.server)
		return
	}
	lk.client.Close()
	lk.server.Close()
}

func abort(c *net.TCPConn) {
	c.SetLinger(0) // close sends an RST
	c.Close()
}

func (p *Proxy) links() []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*link, 0, len(p.conns))
	for lk := range p.conns {
		out = append(out, lk)
	}
	return out
}

// Cut closes every connection and refuses new ones (with an RST) until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	for _, lk := range p.links() {
		p.drop(lk, true)
	}
}

// Reset closes every current connection with an RST; new connections are accepted.
func (p *Proxy) Reset() {
	for _, lk := range p.links() {
		p.drop(lk, true)
	}
}

// Blackhole stops everything in one direction (on) or lets it through again (off). Connections
// stay open: only keepalives and timeouts notice.
func (p *Proxy) Blackhole(dir Direction, on bool) {
	p.mu.Lock()
	p.blackhole[dir] = on
	p.mu.Unlock()
}

// Delay holds every chunk in both directions for d (0 for none).
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Heal undoes every fault: connections are accepted again, nothing is dropped or delayed.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.blackhole = [2]bool{}
	p.delay = 0
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.l.Close()
	for _, lk := range p.links() {
		p.drop(lk, true)
	}
	p.wg.Wait()
	return err
}
