//go:build cgo

package dlib_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kaoqin/kaoqin/agent/testkit"
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
	models, err := testkit.FaceModels()
	if err == nil {
		testdata, err = testkit.Testdata()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
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

func readPhoto(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, "faces", rel))
	if err != nil {
		t.Fatalf("read %s: %v (the shared photo set; set KAOQIN_TESTDATA)", rel, err)
	}
	return b
}
