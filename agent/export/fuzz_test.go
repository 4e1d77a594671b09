package export_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/kaoqin/kaoqin/agent/export"
)

// FuzzVerify feeds Verify a real bundle with bytes changed, and garbage: it must return an error
// or a result, never panic, and never call an edited bundle intact.
func FuzzVerify(f *testing.F) {
	fx := newLedger(f)
	path := fx.bundle(f, export.BundleOptions{})
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, 0, byte(0))
	f.Add(good, len(good)/2, byte(1))
	f.Add(good, 100, byte(0x80))
	f.Add([]byte("PK\x05\x06"+string(make([]byte, 18))), 0, byte(0))
	f.Add([]byte{}, 0, byte(0))
	pub := fx.pub()
	f.Fuzz(func(t *testing.T, b []byte, at int, flip byte) {
		b = bytes.Clone(b)
		if len(b) > 0 && at >= 0 {
			b[at%len(b)] ^= flip
		}
		res, err := export.Verify(bytes.NewReader(b), int64(len(b)), export.VerifyOptions{Key: pub})
		if err == nil && !bytes.Equal(b, good) && res != nil && res.Events > 0 {
			// A change the zip format ignores (a comment, an unused header byte) may still verify;
			// a change to any file's content may not. Check by re-reading the files.
			if !sameFiles(t, b, good) {
				t.Fatalf("an edited bundle verified")
			}
		}
	})
}

func sameFiles(t *testing.T, a, b []byte) bool {
	fa, fb := t.TempDir()+"/a.zip", t.TempDir()+"/b.zip"
	os.WriteFile(fa, a, 0o600)
	os.WriteFile(fb, b, 0o600)
	ma, mb := readZipT(fa), readZipT(fb)
	if len(ma) != len(mb) {
		return false
	}
	for k, v := range ma {
		if !bytes.Equal(v, mb[k]) {
			return false
		}
	}
	return true
}
