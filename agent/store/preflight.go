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
		pageSize       int64
		freelist, pgid uint64
		txid           uint64
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
		return meta{pageSize: int64(le.Uint32(b[8:])), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, true
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
		return fmt.Errorf("%w: the freelist claims %d pages, more than its %d pages hold", ErrDamaged, count, overflow+1)
	}
	return nil
}
