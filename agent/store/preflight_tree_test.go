package store

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"
)

// The preflight's walk of the B+trees, each limit at its edge, on files written byte by byte:
// the two metas, an empty freelist at page 2, and whatever pages a case puts after it. Only the
// fields the preflight reads are set, so each case says exactly which limit it is at.

// synthFile is a bbolt file under construction: pages by id, each as long as its span.
type synthFile struct {
	ps    int
	pgid  uint64 // the pages the meta counts
	root  uint64
	pages map[uint64][]byte
	spare int // pages written past pgid, which the meta does not count
}

func newSynth(ps int) *synthFile {
	return &synthFile{ps: ps, root: 3, pages: map[uint64][]byte{}}
}

// page makes page id with the given flags, element count and overflow, and returns its bytes
// (its whole span) for the caller to fill.
func (f *synthFile) page(id uint64, flags uint16, count int, overflow uint32) []byte {
	p := make([]byte, int(overflow+1)*f.ps)
	binary.LittleEndian.PutUint64(p[0:], id)
	binary.LittleEndian.PutUint16(p[8:], flags)
	binary.LittleEndian.PutUint16(p[10:], uint16(count))
	binary.LittleEndian.PutUint32(p[12:], overflow)
	f.pages[id] = p
	return p
}

// leaf makes a leaf page whose elements are plain values of no length.
func (f *synthFile) leaf(id uint64, count int) []byte {
	return f.page(id, leafFlag, count, 0)
}

// setLeafElem sets leaf element i's flags, position (from the element), key and value sizes.
func setLeafElem(p []byte, i int, flags uint32, pos, ksize, vsize uint32) {
	e := p[pageHeaderSize+i*elementSize:]
	binary.LittleEndian.PutUint32(e[0:], flags)
	binary.LittleEndian.PutUint32(e[4:], pos)
	binary.LittleEndian.PutUint32(e[8:], ksize)
	binary.LittleEndian.PutUint32(e[12:], vsize)
}

// bucket makes leaf element i of p a nested bucket whose tree starts at root; its value (the
// bucket header, 16 bytes) sits right after the element table.
func bucket(p []byte, i, count int, root uint64) {
	at := pageHeaderSize + i*elementSize
	valueAt := pageHeaderSize + count*elementSize + i*16
	setLeafElem(p, i, bucketLeafFlag, uint32(valueAt-at), 0, 16)
	binary.LittleEndian.PutUint64(p[valueAt:], root)
}

// branch makes a branch page whose elements point at children, with keys of no length.
func (f *synthFile) branch(id uint64, children ...uint64) []byte {
	p := f.page(id, branchFlag, len(children), 0)
	for i, c := range children {
		binary.LittleEndian.PutUint64(p[pageHeaderSize+i*elementSize+8:], c)
	}
	return p
}

func setBranchKey(p []byte, i int, pos, ksize uint32) {
	e := p[pageHeaderSize+i*elementSize:]
	binary.LittleEndian.PutUint32(e[0:], pos)
	binary.LittleEndian.PutUint32(e[4:], ksize)
}

func (f *synthFile) bytes() []byte {
	pgid := f.pgid
	if pgid == 0 {
		for id, p := range f.pages {
			pgid = max(pgid, id+uint64(len(p)/f.ps))
		}
		pgid = max(pgid, 3)
	}
	raw := make([]byte, (int(pgid)+f.spare)*f.ps)
	for i := range 2 {
		m := raw[i*f.ps+pageHeaderSize:]
		le := binary.LittleEndian
		le.PutUint32(m[0:], boltMagic)
		le.PutUint32(m[4:], boltVersion)
		le.PutUint32(m[8:], uint32(f.ps))
		le.PutUint64(m[16:], f.root)
		le.PutUint64(m[metaFreelist:], 2)
		le.PutUint64(m[metaPgid:], pgid)
		le.PutUint64(m[metaTxid:], uint64(i+1))
		h := fnv.New64a()
		h.Write(m[:56])
		le.PutUint64(m[56:], h.Sum64())
	}
	binary.LittleEndian.PutUint16(raw[2*f.ps+8:], freelistFlag)
	for id, p := range f.pages {
		copy(raw[int(id)*f.ps:], p)
	}
	return raw
}

func (f *synthFile) check(t *testing.T) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kaoqin.db")
	if err := os.WriteFile(path, f.bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return preflight(path)
}

// edge runs a case at its limit (accepted) and one step past it (refused as damaged).
func edge(t *testing.T, what string, build func(past bool) *synthFile) {
	t.Helper()
	if err := build(false).check(t); err != nil {
		t.Errorf("%s, at the limit: got %v, want it accepted", what, err)
	}
	if err := build(true).check(t); !errors.Is(err, ErrDamaged) {
		t.Errorf("%s, one past the limit: got %v, want ErrDamaged", what, err)
	}
}

func TestPreflightTreeEdges(t *testing.T) {
	const ps = 4096
	pastBy := func(past bool) uint32 {
		if past {
			return 1
		}
		return 0
	}
	edge(t, "a leaf's element table filling its page", func(past bool) *synthFile {
		f := newSynth(ps)
		f.leaf(3, (ps-pageHeaderSize)/elementSize+int(pastBy(past)))
		return f
	})
	edge(t, "a leaf's second element (key and value) ending at its page's end", func(past bool) *synthFile {
		f := newSynth(ps)
		p := f.leaf(3, 2)
		at := pageHeaderSize + elementSize
		setLeafElem(p, 1, 0, 100, 1000, uint32(ps-at-100-1000)+pastBy(past))
		return f
	})
	edge(t, "a branch's second key ending at its page's end", func(past bool) *synthFile {
		f := newSynth(ps)
		p := f.branch(3, 4, 5)
		f.leaf(4, 0)
		f.leaf(5, 0)
		at := pageHeaderSize + elementSize
		setBranchKey(p, 1, 100, uint32(ps-at-100)+pastBy(past))
		return f
	})
	edge(t, "a page overflowing to the last page the meta counts", func(past bool) *synthFile {
		f := newSynth(ps)
		f.page(3, leafFlag, 0, 2)
		f.pgid = 6 - uint64(pastBy(past)) // pages 3-5 hold the leaf
		f.spare = 1                       // the file itself is long enough either way
		return f
	})
	edge(t, "a page size of 512 bytes, the smallest taken", func(past bool) *synthFile {
		f := newSynth(512 >> pastBy(past))
		f.leaf(3, 0)
		return f
	})
	edge(t, "a page size of 1 MiB, the largest bbolt writes", func(past bool) *synthFile {
		f := newSynth(1 << (20 + pastBy(past)))
		f.leaf(3, 0)
		return f
	})
	// Depth: the root is at depth 0, and a page at depth maxTreeDepth is the deepest allowed.
	edge(t, "a chain of branches as deep as allowed", func(past bool) *synthFile {
		f := newSynth(ps)
		last := uint64(3 + maxTreeDepth + pastBy(past))
		for id := uint64(3); id < last; id++ {
			f.branch(id, id+1)
		}
		f.leaf(last, 0)
		return f
	})
	edge(t, "buckets nested as deep as allowed", func(past bool) *synthFile {
		f := newSynth(ps)
		last := uint64(3 + maxTreeDepth + pastBy(past))
		for id := uint64(3); id < last; id++ {
			bucket(f.leaf(id, 1), 0, 1, id+1)
		}
		f.leaf(last, 0)
		return f
	})
}

// Every child of a branch and every bucket of a leaf is walked, not only the first; and only a
// bucket's value is read as a bucket.
func TestPreflightWalksEveryChild(t *testing.T) {
	const ps = 4096
	refused := map[string]func() *synthFile{
		"a branch's second child outside the file": func() *synthFile {
			f := newSynth(ps)
			f.branch(3, 4, 99)
			f.leaf(4, 0)
			return f
		},
		"a leaf's second bucket outside the file": func() *synthFile {
			f := newSynth(ps)
			p := f.leaf(3, 2)
			bucket(p, 0, 2, 4)
			bucket(p, 1, 2, 99)
			f.leaf(4, 0)
			return f
		},
		"a leaf's second bucket reaching a page that is no tree page": func() *synthFile {
			f := newSynth(ps)
			p := f.leaf(3, 2)
			bucket(p, 0, 2, 4)
			bucket(p, 1, 2, 5)
			f.leaf(4, 0)
			f.page(5, freelistFlag, 0, 0)
			return f
		},
		"a bucket's value cut short": func() *synthFile {
			f := newSynth(ps)
			p := f.leaf(3, 1)
			setLeafElem(p, 0, bucketLeafFlag, 100, 0, 15)
			return f
		},
	}
	for what, build := range refused {
		if err := build().check(t); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: got %v, want ErrDamaged", what, err)
		}
	}
	accepted := map[string]func() *synthFile{
		"plain values shorter than a bucket's header": func() *synthFile {
			f := newSynth(ps)
			p := f.leaf(3, 2)
			setLeafElem(p, 0, 0, 100, 4, 8)
			setLeafElem(p, 1, 0, 100, 4, 0)
			return f
		},
		"an inline bucket (root 0) beside a bucket with pages": func() *synthFile {
			f := newSynth(ps)
			p := f.leaf(3, 2)
			bucket(p, 0, 2, 0)
			bucket(p, 1, 2, 4)
			f.leaf(4, 0)
			return f
		},
	}
	for what, build := range accepted {
		if err := build().check(t); err != nil {
			t.Errorf("%s: got %v, want it accepted", what, err)
		}
	}
}
