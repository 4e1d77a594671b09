// Package testkit holds what the tests of every tree share: polling for a condition, a logger that
// writes to the test's output, and a buffer that keeps a daemon's log for a failing test. It is
// imported by tests only.
package testkit

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond every 20 ms until it holds or timeout passes, and reports whether it held.
func WaitFor(t testing.TB, cond func() bool, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logger logs to t's output until the test ends, at warn by default; KAOQIN_TEST_LOG=debug,
// info or error sets the level.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	switch strings.ToLower(os.Getenv("KAOQIN_TEST_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error":
		level = slog.LevelError
	}
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// LogBuffer collects a daemon's log, to show when a test fails. It is safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// RepoRoot is the folder of the module's go.mod, found upwards from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("testkit: no go.mod above the test's folder")
		}
		dir = up
	}
}

// Testdata is the shared photo set (faces/enroll, probe, unknown, group): $KAOQIN_TESTDATA, or
// shared/testdata beside the project or beside one of its parents (a git worktree).
func Testdata() (string, error) {
	if d := os.Getenv("KAOQIN_TESTDATA"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		d := filepath.Join(dir, "shared", "testdata")
		if _, err := os.Stat(filepath.Join(d, "faces")); err == nil {
			return d, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("testkit: no shared/testdata beside the project; set KAOQIN_TESTDATA")
		}
	}
}

// FaceModels is the folder of the dlib models: $KAOQIN_FACE_MODELS, or .cache/face-models in the
// project, where make deps puts them.
func FaceModels() (string, error) {
	if d := os.Getenv("KAOQIN_FACE_MODELS"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "face-models"), nil
}

// EditZip copies the zip at from to to, with the contents of the file name changed by edit (a
// test's tampering with an export bundle).
func EditZip(t testing.TB, from, to, name string, edit func([]byte) []byte) {
	t.Helper()
	zr, err := zip.OpenReader(from)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := zip.NewWriter(out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == name {
			b = edit(b)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
