// Package pgtest runs a real PostgreSQL server (Debian's, under /usr/lib/postgresql/*/bin) for
// tests: one server per test binary, started from TestMain in a temporary directory on a free
// loopback port (and a unix socket in that directory), with one fresh database per test.
//
// PostgreSQL refuses to run as root. When the tests run as root (as CI does), initdb runs as the
// postgres user (runuser -u postgres --) on a directory owned by that user, and the server as a
// child process switched to that user; otherwise both run as the current user. The server dies
// with the test process (parent-death signal), however that ends. A missing PostgreSQL fails the tests: `make deps` installs it.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, pgtest.Options{})) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.DB(t) // postgres://kaoqin@127.0.0.1:PORT/t_1?sslmode=disable
//	}
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is the superuser of the test server (trust authentication on loopback).
const User = "kaoqin"

// Options shape the server.
type Options struct {
	// Durable keeps fsync on, as in production (benchmarks). Tests run without it: a crash of
	// the server (not of the machine) loses no committed transaction either way, since the WAL
	// is written before each commit returns (synchronous_commit stays on).
	Durable bool
	// Extra settings passed with -c (name=value).
	Extra []string
}

// Server is a running PostgreSQL.
type Server struct {
	Dir  string // owned by the server's user: data/, the socket and the log
	Port int

	bin    string
	asUser []string            // runuser prefix for initdb when running as root
	cred   *syscall.Credential // the postgres user when running as root
	opt    Options
	dbs    atomic.Int64

	mu   sync.Mutex
	cmd  *exec.Cmd     // the postmaster, nil when stopped
	done chan struct{} // closed when it has exited
}

var current *Server

// Main starts the server, runs the tests and stops the server. It returns the exit code for
// os.Exit. If the server cannot start, it prints why and returns 1.
func Main(m *testing.M, opt Options) int {
	s, err := Start(opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	current = s
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// Current is the server Main started (nil outside Main).
func Current() *Server { return current }

// Bin returns the directory of Debian's PostgreSQL binaries (the highest version installed).
func Bin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: no PostgreSQL under /usr/lib/postgresql/*/bin (run `make deps`, or apt-get install postgresql)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start makes a cluster in a new temporary directory and starts it. Close stops it and removes
// the directory.
func Start(opt Options) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kaoqin-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{Dir: dir, bin: bin, opt: opt}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		pg, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root and there is no postgres user to run the server: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		s.asUser = []string{"runuser", "-u", "postgres", "--"}
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	out, err := s.run(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", User, "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v: %s", err, out)
	}
	if s.Port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }

func (s *Server) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, s.asUser...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.Dir
	return cmd.CombinedOutput()
}

// Start starts a stopped server on the same port with the same data. The postmaster is a child
// of the test process (as the postgres user when running as root) that the kernel kills if the
// test process dies, so a test binary killed by a timeout leaves no server behind.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	args := []string{"-D", s.data(), "-p", strconv.Itoa(s.Port), "-k", s.Dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=200", "-c", "shared_buffers=128MB"}
	if !s.opt.Durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	for _, e := range s.opt.Extra {
		args = append(args, "-c", e)
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.Dir, logf, logf
	// Go sets the parent-death signal after switching to the postgres user, so it holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for deadline := time.Now().Add(60 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			break
		}
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited at start: %v\n%s", cmd.ProcessState, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("pgtest: postgres not accepting connections after 60s: %v\n%s", err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd, s.done = cmd, done
	return nil
}

// Stop stops the server. Immediate is a crash (SIGQUIT: no checkpoint; the server recovers from
// its WAL at the next Start); otherwise the server stops cleanly (SIGINT, a fast shutdown),
// breaking every connection.
func (s *Server) Stop(immediate bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	sig := syscall.SIGINT
	if immediate {
		sig = syscall.SIGQUIT
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
	return nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop(false)
	return errors.Join(err, os.RemoveAll(s.Dir))
}

// URL is the connection URL of a database on the server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, s.Port, db)
}

// CreateDB creates a new empty database and returns its URL.
func (s *Server) CreateDB(ctx context.Context, prefix string) (string, error) {
	name := fmt.Sprintf("%s_%d", prefix, s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// DB creates a fresh database on the server Main started and returns its URL.
func DB(t testing.TB) string {
	t.Helper()
	if current == nil {
		t.Fatal("pgtest: no server: call pgtest.Main from TestMain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := current.CreateDB(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Log returns the end of the server's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return tail(b)
}

func tail(b []byte) string {
	if len(b) > 4000 {
		return "...\n" + string(b[len(b)-4000:])
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
