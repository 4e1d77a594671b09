package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The preflight's limits, each at its edge: a file a valid ledger would be is accepted, one a
// step past the limit is refused as damaged, and what bbolt would then trust is never reached.

// boltFile is a closed ledger's bytes with helpers that change its meta and pages as damage
// would, keeping each meta's checksum valid (damage that passes the checksum is what the
// preflight's own checks are for).
type boltFile struct {
	raw      []byte
	pageSize int
}

func newBoltFile(t *testing.T) *boltFile {
	t.Helper()
	_, raw := ledgerFile(t, 300)
	ps := int(binary.LittleEndian.Uint32(raw[pageHeaderSize+8:]))
	return &boltFile{raw: raw, pageSize: ps}
}

func (b *boltFile) clone() *boltFile {
	return &boltFile{raw: append([]byte(nil), b.raw...), pageSize: b.pageSize}
}

// meta reads field off (bytes into the meta) of meta page i as a uint64.
func (b *boltFile) meta(i, off int) uint64 {
	return binary.LittleEndian.Uint64(b.raw[i*b.pageSize+pageHeaderSize+off:])
}

// setMeta sets field off of both meta pages and fixes their checksums.
func (b *boltFile) setMeta(off int, v uint64) {
	for i := range 2 {
		m := b.raw[i*b.pageSize+pageHeaderSize:]
		binary.LittleEndian.PutUint64(m[off:], v)
		h := fnv.New64a()
		h.Write(m[:56])
		binary.LittleEndian.PutUint64(m[56:], h.Sum64())
	}
}

// check writes the file and runs the preflight on it.
func (b *boltFile) check(t *testing.T) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kaoqin.db")
	if err := os.WriteFile(path, b.raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return preflight(path)
}

const (
	metaFreelist = 32
	metaPgid     = 40
	metaTxid     = 48
)

func TestPreflightPageCountEdge(t *testing.T) {
	b := newBoltFile(t)
	if err := b.check(t); err != nil {
		t.Fatalf("an intact ledger: %v", err)
	}
	pages := uint64(len(b.raw) / b.pageSize)
	at := b.clone()
	at.setMeta(metaPgid, pages)
	if err := at.check(t); err != nil {
		t.Errorf("the meta counting exactly the file's %d pages: got %v, want it accepted", pages, err)
	}
	past := b.clone()
	past.setMeta(metaPgid, pages+1)
	if err := past.check(t); !errors.Is(err, ErrDamaged) {
		t.Errorf("the meta counting %d pages, the file holding %d: got %v, want ErrDamaged", pages+1, pages, err)
	} else if want := fmt.Sprintf("%d bytes hold %d pages, the meta counts %d", len(b.raw), pages, pages+1); !strings.Contains(err.Error(), want) {
		t.Errorf("the error %q does not say %q", err, want)
	}
}

func TestPreflightFreelistEdges(t *testing.T) {
	b := newBoltFile(t)
	txid0, txid1 := b.meta(0, metaTxid), b.meta(1, metaTxid)
	m := 0
	if txid1 > txid0 {
		m = 1
	}
	fl, pgid := b.meta(m, metaFreelist), b.meta(m, metaPgid)
	if fl < 2 || fl >= pgid {
		t.Fatalf("the intact ledger's freelist is page %d of %d", fl, pgid)
	}
	b.setMeta(metaPgid, pgid) // both metas agree from here
	b.setMeta(metaFreelist, fl)
	hdr := int(fl) * b.pageSize
	setCount := func(f *boltFile, n uint16) { binary.LittleEndian.PutUint16(f.raw[hdr+10:], n) }
	setOverflow := func(f *boltFile, n uint32) { binary.LittleEndian.PutUint32(f.raw[hdr+12:], n) }
	if binary.LittleEndian.Uint32(b.raw[hdr+12:]) != 0 {
		t.Fatalf("the intact ledger's freelist overflows: the edges below assume one page")
	}
	room := uint16((b.pageSize - pageHeaderSize) / 8)

	full := b.clone()
	setCount(full, room)
	if err := full.check(t); err != nil {
		t.Errorf("a freelist of exactly the %d ids its page holds: got %v, want it accepted", room, err)
	}
	over := b.clone()
	setCount(over, room+1)
	if err := over.check(t); !errors.Is(err, ErrDamaged) {
		t.Errorf("a freelist claiming %d ids in a page that holds %d: got %v, want ErrDamaged", room+1, room, err)
	}
	// Overflow pages: the freelist may run to the last page the meta counts, not past it.
	last := b.clone()
	setOverflow(last, uint32(pgid-1-fl))
	setCount(last, 1)
	if err := last.check(t); err != nil {
		t.Errorf("a freelist running to page %d, the last of %d: got %v, want it accepted", pgid-1, pgid, err)
	}
	beyond := b.clone()
	setOverflow(beyond, uint32(pgid-fl))
	setCount(beyond, 1)
	if err := beyond.check(t); !errors.Is(err, ErrDamaged) {
		t.Errorf("a freelist running to page %d of %d: got %v, want ErrDamaged", pgid, pgid, err)
	} else if want := fmt.Sprintf("more than its %d pages hold", pgid-fl+1); !strings.Contains(err.Error(), want) {
		t.Errorf("the error %q does not say %q", err, want)
	}
	// The freelist page itself: page 2 is the first that may be one, the meta's count bounds it.
	for _, tc := range []struct {
		page uint64
		want bool // refused
	}{{1, true}, {pgid, true}} {
		f := b.clone()
		f.setMeta(metaFreelist, tc.page)
		if err := f.check(t); errors.Is(err, ErrDamaged) != tc.want {
			t.Errorf("the freelist at page %d of %d: got %v, want refused %v", tc.page, pgid, err, tc.want)
		}
	}
	// A freelist that keeps its length in its first element (the header's count at its maximum).
	long := b.clone()
	setCount(long, maxPageHeaderN)
	binary.LittleEndian.PutUint64(long.raw[hdr+pageHeaderSize:], uint64(room)-2) // the length, then room-2 ids: room-1 elements
	if err := long.check(t); err != nil {
		t.Errorf("a freelist of %d ids with its length in its first element: got %v, want it accepted", room-2, err)
	}
	binary.LittleEndian.PutUint64(long.raw[hdr+pageHeaderSize:], uint64(room))
	if err := long.check(t); !errors.Is(err, ErrDamaged) {
		t.Errorf("a freelist of %d ids (and its length) in a page that holds %d elements: got %v, want ErrDamaged", room, room, err)
	}
}

// A damaged first meta page is what bbolt's second one is for: the preflight finds meta 1 at the
// file's page size and accepts the file.
func TestPreflightFindsTheSecondMeta(t *testing.T) {
	b := newBoltFile(t)
	binary.LittleEndian.PutUint32(b.raw[pageHeaderSize:], 0xdeadbeef) // meta 0's magic
	if err := b.check(t); err != nil {
		t.Fatalf("meta 0 damaged, meta 1 intact: got %v, want the file accepted", err)
	}
	binary.LittleEndian.PutUint32(b.raw[b.pageSize+pageHeaderSize:], 0xdeadbeef)
	if err := b.check(t); !errors.Is(err, ErrDamaged) {
		t.Fatalf("both metas damaged: got %v, want ErrDamaged", err)
	}
}

// A file bbolt has just created keeps its freelist in page 2, the first page that may hold one.
func TestPreflightAcceptsAFreshBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fl := binary.LittleEndian.Uint64(raw[pageHeaderSize+metaFreelist:]); fl != 2 {
		t.Fatalf("a fresh bbolt file's freelist is page %d; this test wants page 2", fl)
	}
	if err := preflight(path); err != nil {
		t.Fatalf("a fresh bbolt file: got %v, want it accepted", err)
	}
}
