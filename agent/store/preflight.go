package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's file format, as far as preflight reads it (go.etcd.io/bbolt/internal/common: Page,
// Meta). Both meta pages sit at the start of the file; each page starts with a 16-byte header.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16
	metaSize        = 64 // magic, version, page size, flags, root, sequence, freelist, pgid, txid, checksum
	freelistFlag    = 0x10
	noFreelist      = 0xFFFFFFFFFFFFFFFF
	maxPageHeaderN  = 0xFFFF // a page's count field; a freelist this long keeps its count in the first element
	minFilePageSize = 512
)

// preflight checks, before bbolt maps a file, what bbolt would trust without checking: that a
// meta page is valid, that the file holds every page the meta counts, and that the freelist's
// length fits its pages. A damaged freelist count makes bbolt allocate without bound (a process
// killed for memory is no better than a panic). An empty file is left to bbolt to initialise.
func preflight(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	read := func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > size {
			return nil, fmt.Errorf("%w: the file is cut short (%d bytes, a page at %d)", ErrDamaged, size, off)
		}
		b := make([]byte, n)
		_, err := f.ReadAt(b, off)
		if err == io.EOF {
			err = nil
		}
		return b, err
	}
	type meta struct {
		pageSize             int64
		root, freelist, pgid uint64
		txid                 uint64
	}
	parse := func(off int64) (meta, bool) {
		b, err := read(off+pageHeaderSize, metaSize)
		if err != nil {
			return meta{}, false
		}
		le := binary.LittleEndian
		h := fnv.New64a()
		h.Write(b[:56])
		if le.Uint32(b[0:]) != boltMagic || le.Uint32(b[4:]) != boltVersion || le.Uint64(b[56:]) != h.Sum64() {
			return meta{}, false
		}
		return meta{pageSize: int64(le.Uint32(b[8:])), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, true
	}
	m0, ok0 := parse(0)
	var m1 meta
	ok1 := false
	if ok0 {
		m1, ok1 = parse(m0.pageSize)
	} else {
		for _, ps := range []int64{4096, 8192, 16384, 65536} { // meta 0 damaged: find meta 1 by the usual page sizes
			if m1, ok1 = parse(ps); ok1 && m1.pageSize == ps {
				break
			}
			ok1 = false
		}
	}
	m := m0
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case !ok0 && !ok1:
		return fmt.Errorf("%w: neither meta page is valid", ErrDamaged)
	}
	if m.pageSize < minFilePageSize || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return fmt.Errorf("%w: page size %d", ErrDamaged, m.pageSize)
	}
	if m.pgid > uint64(size/m.pageSize) {
		return fmt.Errorf("%w: the file is cut short: %d bytes hold %d pages, the meta counts %d", ErrDamaged, size, size/m.pageSize, m.pgid)
	}
	if err := (&treeCheck{f: f, pageSize: m.pageSize, pgid: m.pgid, seen: map[uint64]bool{}}).page(m.root, 0); err != nil {
		return err
	}
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("%w: the freelist page %d is outside the file's %d pages", ErrDamaged, m.freelist, m.pgid)
	}
	hdr, err := read(int64(m.freelist)*m.pageSize, pageHeaderSize+8)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	flags, count, overflow := le.Uint16(hdr[8:]), uint64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if flags&freelistFlag == 0 {
		return fmt.Errorf("%w: page %d is not the freelist (flags %#x)", ErrDamaged, m.freelist, flags)
	}
	if count == maxPageHeaderN {
		count = le.Uint64(hdr[pageHeaderSize:]) + 1 // the first element holds the length
	}
	room := (overflow+1)*uint64(m.pageSize) - pageHeaderSize
	if m.freelist+overflow >= m.pgid || count > room/8 {
		return fmt.Errorf("%w: the freelist lists %d page ids, more than its %d pages hold", ErrDamaged, count, overflow+1)
	}
	return nil
}

// Page flags and element sizes of bbolt's B+trees (internal/common/page.go).
const (
	branchFlag     = 0x01
	leafFlag       = 0x02
	bucketLeafFlag = 0x01 // a leaf element that is a nested bucket
	elementSize    = 16   // a branch element (pos, ksize, pgid) and a leaf element (flags, pos, ksize, vsize)
	maxTreeDepth   = 64
)

// treeCheck walks every B+tree of the file from the raw bytes, before bbolt does: each page
// reached once (a cycle would make bbolt's cursors grow their stacks without bound), within the
// pages the meta counts, of the right type, its elements inside it.
type treeCheck struct {
	f        *os.File
	pageSize int64
	pgid     uint64
	seen     map[uint64]bool
}

func (c *treeCheck) page(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: a tree deeper than %d pages (a loop?) at page %d", ErrDamaged, maxTreeDepth, id)
	}
	if id < 2 || id >= c.pgid {
		return fmt.Errorf("%w: a tree refers to page %d, outside the file's %d pages", ErrDamaged, id, c.pgid)
	}
	if c.seen[id] {
		return fmt.Errorf("%w: page %d is reached twice (a loop or a shared page)", ErrDamaged, id)
	}
	c.seen[id] = true
	hdr := make([]byte, pageHeaderSize)
	if _, err := c.f.ReadAt(hdr, int64(id)*c.pageSize); err != nil {
		return fmt.Errorf("%w: page %d: %v", ErrDamaged, id, err)
	}
	le := binary.LittleEndian
	flags, count, overflow := le.Uint16(hdr[8:]), int64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if id+overflow >= c.pgid {
		return fmt.Errorf("%w: page %d overflows past the file's %d pages", ErrDamaged, id, c.pgid)
	}
	span := int64(overflow+1) * c.pageSize
	if pageHeaderSize+count*elementSize > span {
		return fmt.Errorf("%w: page %d claims %d elements", ErrDamaged, id, count)
	}
	body := make([]byte, span)
	if _, err := c.f.ReadAt(body, int64(id)*c.pageSize); err != nil {
		return fmt.Errorf("%w: page %d: %v", ErrDamaged, id, err)
	}
	switch {
	case flags&branchFlag != 0:
		for i := range count {
			e := body[pageHeaderSize+i*elementSize:]
			pos, ksize := int64(le.Uint32(e[0:])), int64(le.Uint32(e[4:]))
			if pageHeaderSize+i*elementSize+pos+ksize > span {
				return fmt.Errorf("%w: page %d: key %d runs past the page", ErrDamaged, id, i)
			}
			if err := c.page(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		}
	case flags&leafFlag != 0:
		for i := range count {
			at := pageHeaderSize + i*elementSize
			e := body[at:]
			eflags, pos, ksize, vsize := le.Uint32(e[0:]), int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
			if at+pos+ksize+vsize > span {
				return fmt.Errorf("%w: page %d: element %d runs past the page", ErrDamaged, id, i)
			}
			if eflags&bucketLeafFlag == 0 {
				continue
			}
			if vsize < 16 {
				return fmt.Errorf("%w: page %d: bucket %d is cut short", ErrDamaged, id, i)
			}
			v := body[at+pos+ksize : at+pos+ksize+vsize]
			if root := le.Uint64(v); root != 0 { // 0: an inline bucket, in the value itself
				if err := c.page(root, depth+1); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("%w: page %d is in a tree but is neither a branch nor a leaf (flags %#x)", ErrDamaged, id, flags)
	}
	return nil
}
