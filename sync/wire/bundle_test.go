package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func testBundle(t testing.TB, key ed25519.PrivateKey, device string, content []byte) []byte {
	t.Helper()
	issued := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	m, _, err := Split("roster", 7, device, content, MaxChunkSize, issued)
	if err != nil {
		t.Fatal(err)
	}
	m.Expires = issued.Add(30 * 24 * time.Hour)
	b, err := SealBundle(m, content, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBundleRoundTrip(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	content := []byte(`{"version":7}`)
	p := testBundle(t, key, "box-1", content)
	b, err := DecodeBundle(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Open(pub)
	if err != nil {
		t.Fatal(err)
	}
	if m.Device != "box-1" || m.Version != 7 || m.Dataset != "roster" || !bytes.Equal(b.Content, content) || m.Expires.IsZero() {
		t.Fatalf("got %+v content %q, want box-1 roster v7 with an expiry and the content", m, b.Content)
	}
	if ds, v, sha := b.Claimed(); ds != "roster" || v != 7 || sha != m.SHA256 {
		t.Fatalf("claimed %s %d %s, want roster 7 %s", ds, v, sha, m.SHA256)
	}
}

func TestBundleAttacks(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	content := []byte(`{"version":7}`)
	// A plain roster is not a bundle.
	if _, err := DecodeBundle(content); !errors.Is(err, ErrMalformed) {
		t.Fatalf("plain roster: got %v, want ErrMalformed", err)
	}
	// Signed by another key.
	b, err := DecodeBundle(testBundle(t, other, "box-1", content))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(pub); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged: got %v, want ErrSignature", err)
	}
	// Content swapped after signing.
	b, err = DecodeBundle(testBundle(t, key, "box-1", content))
	if err != nil {
		t.Fatal(err)
	}
	b.Content = []byte(`{"version":8}`)
	if _, err := b.Open(pub); !errors.Is(err, ErrSignature) {
		t.Fatalf("content swapped: got %v, want ErrSignature", err)
	}
}

// FuzzDecodeBundle: a bundle file either is refused with a wire error or opens to a manifest that
// passes its own check and describes the content.
func FuzzDecodeBundle(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(nil)
	f.Add(testBundle(f, key, "box-1", []byte(`{"version":7}`)))
	f.Add([]byte(`{"version":9999999999}`))
	f.Add([]byte(`{"v":1,"kind":"bundle","manifest":null,"content":""}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := DecodeBundle(p)
		if err != nil {
			refused(t, err)
			return
		}
		b.Claimed()
		m, err := b.Open(pub)
		if err != nil {
			refused(t, err)
			return
		}
		if err := m.Check(); err != nil {
			t.Fatalf("opened manifest fails its check: %v", err)
		}
		if err := m.CheckContent(b.Content); err != nil {
			t.Fatalf("opened bundle's content: %v", err)
		}
	})
}
