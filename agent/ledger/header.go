package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// header is the part of a body that places it in its chain.
type header struct {
	device     string
	epoch, seq uint64
}

// header reads the device, epoch and seq of a body and checks its version. Bodies sealed by this
// package start {"prev":"<64 hex>","v":1,"device":"<name>","epoch":N,"seq":N, in that order, and
// are read without decoding the rest; any other layout is decoded in full.
func (r Record) header() (header, error) {
	if len(r) <= SigSize {
		return header{}, ErrShortRecord
	}
	b := r.Body()
	if h, ok := fastHeader(b); ok {
		return h, nil
	}
	var e struct {
		V      int    `json:"v"`
		Device string `json:"device"`
		Epoch  uint64 `json:"epoch"`
		Seq    uint64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return header{}, fmt.Errorf("ledger: decode body: %w", err)
	}
	if e.V != Version {
		return header{}, fmt.Errorf("ledger: body version %d, want %d", e.V, Version)
	}
	return header{e.Device, e.Epoch, e.Seq}, nil
}

func fastHeader(b []byte) (header, bool) {
	var h header
	rest, ok := skip(b, prevPrefix)
	if !ok || len(rest) < 64 {
		return h, false
	}
	if rest, ok = skip(rest[64:], `","v":`+strconv.Itoa(Version)+`,"device":"`); !ok {
		return h, false
	}
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return h, false
	}
	h.device = string(rest[:i])
	if rest, ok = skip(rest[i+1:], `,"epoch":`); !ok {
		return h, false
	}
	if h.epoch, rest, ok = uintThen(rest, `,"seq":`); !ok {
		return h, false
	}
	h.seq, _, ok = uintThen(rest, `,`)
	return h, ok
}

func skip(b []byte, prefix string) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return b, false
	}
	return b[len(prefix):], true
}

// uintThen reads an unsigned decimal at the start of b that is followed by next.
func uintThen(b []byte, next string) (uint64, []byte, bool) {
	i := 0
	for i < len(b) && i <= 20 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || !bytes.HasPrefix(b[i:], []byte(next)) {
		return 0, b, false
	}
	n, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil {
		return 0, b, false
	}
	return n, b[i+len(next):], true
}
