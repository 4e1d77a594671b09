// Package pgtest runs a real PostgreSQL server (Debian's, under /usr/lib/postgresql/*/bin) for
// tests: one server per test binary, started from TestMain in a temporary directory on a free
// loopback port (and a unix socket in that directory), with one fresh database per test.
//
// PostgreSQL refuses to run as root. When the tests run as root (as CI does), initdb and pg_ctl
// run as the postgres user (runuser -u postgres --) on a directory owned by that user; otherwise
// they run as the current user. A missing PostgreSQL fails the tests: `make deps` installs it.
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
	"strings"
	"sync"
	"sync/atomic"
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
	asUser []string // runuser prefix when running as root
	opt    Options
	mu     sync.Mutex
	up     bool
	dbs    atomic.Int64
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

// Start starts a stopped server on the same port with the same data.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return nil
	}
	opts := []string{"-p", strconv.Itoa(s.Port), "-k", s.Dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=200", "-c", "shared_buffers=128MB"}
	if !s.opt.Durable {
		opts = append(opts, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	for _, e := range s.opt.Extra {
		opts = append(opts, "-c", e)
	}
	out, err := s.run(filepath.Join(s.bin, "pg_ctl"), "start", "-w", "-t", "60", "-D", s.data(),
		"-l", filepath.Join(s.Dir, "server.log"), "-o", strings.Join(opts, " "))
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
		return fmt.Errorf("pgtest: pg_ctl start: %v: %s\n%s", err, out, tail(log))
	}
	s.up = true
	return nil
}

// Stop stops the server. Immediate is a crash (no checkpoint; the server recovers from its WAL
// at the next Start); otherwise the server stops cleanly, breaking every connection.
func (s *Server) Stop(immediate bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return nil
	}
	mode := "fast"
	if immediate {
		mode = "immediate"
	}
	out, err := s.run(filepath.Join(s.bin, "pg_ctl"), "stop", "-w", "-t", "60", "-m", mode, "-D", s.data())
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v: %s", err, out)
	}
	s.up = false
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
