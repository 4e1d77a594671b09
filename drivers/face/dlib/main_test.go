//go:build cgo

package dlib_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kaoqin/kaoqin/drivers/face/dlib"
)

// The recognizers are loaded once per test binary: plain (frames) and with jitter (enrolment).
var (
	plain, jittered *dlib.Recognizer
	testdata        string
)

// enrolJitter is the jitter the tests enrol with: enough to show its effect, cheap on two cores.
const enrolJitter = 10

func TestMain(m *testing.M) {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	models := os.Getenv("KAOQIN_FACE_MODELS")
	if models == "" {
		models = filepath.Join(root, ".cache", "face-models")
	}
	if testdata = os.Getenv("KAOQIN_TESTDATA"); testdata == "" {
		testdata = findShared(root)
	}
	if plain, err = dlib.Open(models, dlib.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if jittered, err = dlib.Open(models, dlib.Options{Jitter: enrolJitter}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	plain.Close()
	jittered.Close()
	os.Exit(code)
}

func repoRoot() (string, error) {
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
			return "", fmt.Errorf("no go.mod above the test's folder")
		}
		dir = up
	}
}

// findShared finds shared/testdata beside the project or beside one of its parents (a git
// worktree); $KAOQIN_TESTDATA overrides it.
func findShared(root string) string {
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		d := filepath.Join(dir, "shared", "testdata")
		if _, err := os.Stat(d); err == nil {
			return d
		}
		if filepath.Dir(dir) == dir {
			return filepath.Join(filepath.Dir(root), "shared", "testdata")
		}
	}
}

func readPhoto(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, "faces", rel))
	if err != nil {
		t.Fatalf("read %s: %v (the shared photo set; set KAOQIN_TESTDATA)", rel, err)
	}
	return b
}
