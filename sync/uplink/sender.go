package uplink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// flight is a published batch not yet acknowledged.
type flight struct {
	first, last uint64
	at          time.Time // when it was published
	fresh       bool      // no seq of it was published before (by this process or one before it)
}

// sender is the state of the one sender goroutine. Nothing else touches it.
type sender struct {
	acked     uint64 // the store's cursor, cached: the sender is its only writer
	next      uint64 // the next seq to publish
	maxSent   uint64 // the highest seq this process published
	startHead uint64 // the head when Run started: a previous process may have sent up to here
	inflight  []flight
	gen       uint64 // connection generation last seen
	up        bool

	lastProgress time.Time     // last ack progress, or when the window was last empty and filled
	ackTimeout   time.Duration // current stall timeout (doubles on each stall)
	wantState    bool
	stateAt      time.Time // when the state was last published
	stateOf      [2]uint64 // the head and cursor it reported

	ev   evSender   // the evidence photos (evidence.go)
	salv salvSender // the events salvaged from a damaged file (salvage.go)
}

// stateEvery is how often the state is refreshed while the ledger moves (it is refreshed every
// StateInterval regardless), so that the central sees backlogs grow and drain.
const stateEvery = 5 * time.Second

// send is the sender loop. It returns when ctx is done (after the flush) or the store fails.
func (u *Uplink) send(ctx context.Context) error {
	acked, err := u.st.Acked()
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	head, _ := u.st.Head()
	s := &sender{acked: acked, next: acked + 1, startHead: head, ackTimeout: u.cfg.AckTimeout}
	tick := time.NewTicker(min(max(u.cfg.AckTimeout/10, 20*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return u.flush(s)
		case <-u.inbox.notify:
		case <-u.st.Appended():
		case <-u.stateReq:
			s.wantState = true
		case <-tick.C:
		}
		if err := u.step(s, time.Now()); err != nil {
			return err
		}
	}
}

// flush keeps sending and taking acks until everything is acknowledged or FlushTimeout passes.
func (u *Uplink) flush(s *sender) error {
	deadline := time.NewTimer(u.cfg.FlushTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := u.step(s, time.Now()); err != nil {
			return err
		}
		head, _ := u.st.Head()
		if !s.up || s.acked >= head {
			return nil
		}
		select {
		case <-deadline.C:
			u.log.Info("uplink: flush timed out", "acked", s.acked, "head", head)
			return nil
		case <-u.inbox.notify:
		case <-u.st.Appended():
		case <-tick.C:
		}
	}
}

// step applies what the inbox holds, then publishes what the window allows and checks for a stall.
func (u *Uplink) step(s *sender, now time.Time) error {
	acks, resyncs, up, gen := u.inbox.take()
	if gen != s.gen && up {
		s.gen = gen
		s.wantState = true
		u.goBack(s, now, "connected")
	}
	s.up = up
	if err := u.takeAcks(s, acks, now); err != nil {
		return err
	}
	for _, from := range resyncs {
		// Resend from from_seq, but never skip what is not acknowledged.
		s.next = min(max(from, 1), s.acked+1)
		s.inflight = s.inflight[:0]
		s.lastProgress = now
		u.stats.goBacks.Add(1)
		u.log.Info("uplink: resync asked by the central system", "from_seq", s.next)
	}
	if !s.up {
		return nil
	}
	head, _ := u.st.Head()
	moved := [2]uint64{head, s.acked} != s.stateOf && now.Sub(s.stateAt) >= min(stateEvery, u.cfg.StateInterval)
	if s.wantState || moved || now.Sub(s.stateAt) >= u.cfg.StateInterval {
		u.publishState(s, now)
	}
	if err := u.fill(s, now); err != nil {
		return err
	}
	// Salvaged events and photos only while every event is acknowledged: sign-ins always go first.
	if evAcks := u.inbox.takeEvidenceAcks(); len(s.inflight) == 0 && s.acked >= head {
		if err := u.stepSalvage(s, now); err != nil {
			return err
		}
		if err := u.stepEvidence(s, evAcks, now); err != nil {
			return err
		}
	} else if len(evAcks) > 0 {
		for _, sha := range evAcks {
			if err := u.st.AckEvidence(sha); err != nil {
				return fmt.Errorf("uplink: evidence ack: %w", err)
			}
			delete(s.ev.sent, sha)
		}
	}
	if len(s.inflight) > 0 && now.Sub(s.lastProgress) > s.ackTimeout {
		u.log.Info("uplink: acks stalled; sending again", "waited", s.ackTimeout, "from_seq", s.acked+1)
		s.ackTimeout = min(2*s.ackTimeout, u.cfg.MaxAckTimeout)
		u.goBack(s, now, "stall")
		return u.fill(s, now)
	}
	return nil
}

// goBack forgets every batch in flight: the next publish is acked+1.
func (u *Uplink) goBack(s *sender, now time.Time, why string) {
	if len(s.inflight) > 0 || s.next != s.acked+1 {
		u.stats.goBacks.Add(1)
		u.log.Debug("uplink: go back", "why", why, "from_seq", s.acked+1, "was_next", s.next)
	}
	s.inflight = s.inflight[:0]
	s.next = s.acked + 1
	s.lastProgress = now
}

// takeAcks applies acks: the highest valid one moves the cursor; batches it covers leave the window.
func (u *Uplink) takeAcks(s *sender, acks []wire.Ack, now time.Time) error {
	var best uint64
	var receipt *wire.Ack
	sent := max(s.maxSent, s.startHead)
	for _, a := range acks {
		switch {
		case a.Epoch != u.epoch:
			if ok, err := u.takeSalvageAck(s, a); err != nil {
				return err
			} else if !ok {
				u.stats.staleAcks.Add(1)
				u.log.Debug("uplink: ack for another epoch ignored", "epoch", a.Epoch, "current", u.epoch)
			}
		case a.AckedThrough > sent:
			u.stats.beyondAcks.Add(1)
			u.log.Warn("uplink: ack beyond what was sent ignored", "acked_through", a.AckedThrough, "sent_through", sent)
			if err := u.alarm(ledger.AlarmAckBeyond, "",
				fmt.Sprintf("the central system acknowledged epoch %d through seq %d; only seqs through %d were sent", a.Epoch, a.AckedThrough, sent)); err != nil {
				return err
			}
		default:
			if a.AckedThrough <= s.acked {
				u.stats.staleAcks.Add(1)
			} else {
				u.stats.acks.Add(1)
			}
			if a.AckedThrough > best {
				best, receipt = a.AckedThrough, &a
			}
		}
	}
	if best == 0 {
		return nil
	}
	if best > s.acked {
		_, err := u.st.AckReceipt(store.Receipt{Device: receipt.Device, Epoch: receipt.Epoch, Seq: receipt.AckedThrough,
			Hash: receipt.HashBytes(), Time: receipt.Time, Signed: receipt.Signed})
		if errors.Is(err, store.ErrReceiptMismatch) {
			u.refuseAck(err)
			return nil
		}
		if err != nil {
			if errors.Is(err, store.ErrFatal) {
				return fmt.Errorf("uplink: %w", err)
			}
			u.log.Error("uplink: ack not recorded", "acked_through", best, "err", err)
			return nil
		}
		s.acked = best
		s.lastProgress = now
		s.ackTimeout = u.cfg.AckTimeout
		u.centralTime(s, receipt, now)
	}
	n := 0
	for _, f := range s.inflight {
		if f.last > best {
			s.inflight[n] = f
			n++
		}
	}
	if n < len(s.inflight) {
		s.lastProgress = now
		s.ackTimeout = u.cfg.AckTimeout
	}
	s.inflight = s.inflight[:n]
	if s.next <= best {
		s.next = best + 1
	}
	return nil
}

// centralTime hands the agent the central system's clock from an ack that moved the cursor, when
// the batch it acknowledges was published once, by this process: the central committed it between
// that publish and now. (The ack of a batch sent twice may answer the first copy, whose time this
// process may not know.)
func (u *Uplink) centralTime(s *sender, a *wire.Ack, now time.Time) {
	if u.cfg.Downlink == nil {
		return
	}
	for _, f := range s.inflight {
		if f.first <= a.AckedThrough && a.AckedThrough <= f.last {
			if f.fresh && !now.Before(f.at) {
				u.cfg.Downlink.Deliver(Delivery{Time: &CentralTime{Time: a.Time, Sent: f.at, Received: now, Seq: a.AckedThrough, Receipt: a.Signed}})
			}
			return
		}
	}
}

// fill publishes batches until the window is full or the ledger is all sent.
func (u *Uplink) fill(s *sender, now time.Time) error {
	for len(s.inflight) < u.cfg.Window {
		head, _ := u.st.Head()
		if s.next > head {
			return nil
		}
		recs, err := u.st.Range(s.next, u.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("uplink: read ledger: %w", err)
		}
		b := wire.Batch{Device: u.cfg.Device, Epoch: u.epoch, FirstSeq: s.next}
		size := 0
		for i, r := range recs {
			if r.Seq != s.next+uint64(i) {
				u.log.Error("uplink: the ledger has a gap", "want_seq", s.next+uint64(i), "got_seq", r.Seq)
				break
			}
			if i > 0 && size+len(r.Record) > u.cfg.BatchBytes {
				break
			}
			size += len(r.Record)
			b.Events = append(b.Events, r.Record)
		}
		if len(b.Events) == 0 {
			return nil
		}
		b.LastSeq = b.FirstSeq + uint64(len(b.Events)) - 1
		p, err := b.Encode()
		if err != nil {
			return fmt.Errorf("uplink: encode batch %d..%d: %w", b.FirstSeq, b.LastSeq, err)
		}
		tok := u.conn.Publish(u.eventsTopic, 1, false, p)
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil { // not connected: the reconnect goes back anyway
				u.log.Debug("uplink: publish failed", "err", err)
				s.up = false
				return nil
			}
		default:
		}
		if len(s.inflight) == 0 {
			s.lastProgress = now
		}
		s.inflight = append(s.inflight, flight{first: b.FirstSeq, last: b.LastSeq, at: now, fresh: b.FirstSeq > max(s.maxSent, s.startHead)})
		u.stats.batches.Add(1)
		if b.FirstSeq <= s.maxSent {
			u.stats.resent.Add(1)
		}
		s.maxSent = max(s.maxSent, b.LastSeq)
		s.next = b.LastSeq + 1
	}
	return nil
}

// publishState publishes the retained state without waiting for the broker.
func (u *Uplink) publishState(s *sender, now time.Time) {
	st := u.state(s.acked)
	p, err := st.Encode()
	if err != nil {
		u.log.Error("uplink: state", "err", err)
		return
	}
	u.conn.Publish(u.stateTopic, 1, true, p)
	s.wantState = false
	s.stateAt = now
	s.stateOf = [2]uint64{st.HeadSeq, st.AckedThrough}
}
