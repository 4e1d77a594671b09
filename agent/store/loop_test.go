package store

import (
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// Three hundred damaged copies of one ledger (a byte flipped anywhere, a third of them also cut
// short), from a fixed seed: each opens (a damaged one moved aside for a new epoch) and takes an
// append; none panics, faults or allocates without bound. FuzzOpen explores further.
func TestRandomDamageNeverStopsTheBox(t *testing.T) {
	cfg, raw := ledgerFile(t, 40)
	r := rand.New(rand.NewSource(1))
	dir := t.TempDir()
	for i := range 300 {
		b := append([]byte(nil), raw...)
		at := r.Intn(len(b))
		b[at] ^= byte(r.Intn(255) + 1)
		if r.Intn(3) == 0 {
			b = b[:r.Intn(len(b))]
		}
		c := cfg
		c.Path = filepath.Join(dir, "kaoqin.db")
		c.EvidenceDir = ""
		if err := os.WriteFile(c.Path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("case %d (byte %d flipped, %d bytes): Open: %v", i, at, len(b), err)
		}
		if _, err := s.Append(signIn("T1")); err != nil {
			t.Fatalf("case %d: append: %v", i, err)
		}
		s.Close()
		asides, _ := filepath.Glob(c.Path + ".corrupt-*")
		for _, a := range asides {
			os.Remove(a)
		}
	}
}
