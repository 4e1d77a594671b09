package cert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// BlocksDataset is the name of the dataset that assigns serial blocks to a box.
const BlocksDataset = "certblocks"

// Blocks is the certblocks dataset: the ranges of sequence numbers the central system assigns to
// one box, per issuer, year and category. A box allocates only inside its blocks, so two boxes of
// one institution, or a box and its replacement, never hand out the same serial.
type Blocks struct {
	Version uint64    `json:"version"`
	Device  string    `json:"device"` // the box they are for: blocks of another box are refused
	Issued  time.Time `json:"issued"`
	Blocks  []Block   `json:"blocks"`
}

// Block is a range of sequence numbers, First..Last inclusive.
type Block struct {
	City        string `json:"city"`
	County      string `json:"county"`
	Institution string `json:"institution"`
	Year        int    `json:"year"`
	Category    string `json:"category"`
	First       int    `json:"first"`
	Last        int    `json:"last"`
}

// Issuer is the block's issuer.
func (b *Block) Issuer() Issuer {
	return Issuer{City: b.City, County: b.County, Institution: b.Institution}
}

// SeqKey is the key of a sequence counter: the serial's prefix (issuer and year) and the category,
// "37010200012600001A" without its sequence: "370102000126A".
func SeqKey(iss Issuer, year int, cat Category) string { return iss.Key(year) + string(rune(cat)) }

// DecodeBlocks reads a certblocks dataset strictly and validates it.
func DecodeBlocks(raw []byte) (*Blocks, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b Blocks
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("cert: blocks: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("cert: blocks: trailing data after the object")
	}
	var p []string
	if b.Version == 0 {
		p = append(p, "version: must be 1 or more")
	}
	if b.Device == "" {
		p = append(p, "device: empty")
	}
	for i, bl := range b.Blocks {
		where := fmt.Sprintf("blocks[%d]", i)
		if err := bl.Issuer().Validate(); err != nil {
			p = append(p, fmt.Sprintf("%s: %v", where, err))
		}
		if _, err := ParseCategory(bl.Category); err != nil {
			p = append(p, fmt.Sprintf("%s: %v", where, err))
		}
		if bl.Year < 2000 || bl.Year > 2099 {
			p = append(p, fmt.Sprintf("%s: year %d outside 2000-2099", where, bl.Year))
		}
		if bl.First < 1 || bl.Last > MaxSeq || bl.Last < bl.First {
			p = append(p, fmt.Sprintf("%s: range %d-%d: want 1 <= first <= last <= %d", where, bl.First, bl.Last, MaxSeq))
		}
		for j := range i {
			o := b.Blocks[j]
			if o.Issuer() == bl.Issuer() && o.Year == bl.Year && o.Category == bl.Category && o.First <= bl.Last && bl.First <= o.Last {
				p = append(p, fmt.Sprintf("%s: overlaps blocks[%d]", where, j))
			}
		}
	}
	if p != nil {
		return nil, fmt.Errorf("cert: blocks: %d problem(s): %s", len(p), strings.Join(p, "; "))
	}
	return &b, nil
}

// NextIn returns the first sequence number above last that lies in one of bs's blocks for the
// issuer, year and category, or ErrOutsideBlocks.
func (bs *Blocks) NextIn(iss Issuer, year int, cat Category, last int) (int, error) {
	best := 0
	for _, b := range bs.Blocks {
		if b.Issuer() != iss || b.Year != year || b.Category != string(rune(cat)) || b.Last <= last {
			continue
		}
		if n := max(b.First, last+1); best == 0 || n < best {
			best = n
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("%w: %s%c after sequence %05d", ErrOutsideBlocks, iss.Key(year), cat, last)
	}
	return best, nil
}

// ErrOutsideBlocks means the box has no sequence numbers left for an issuer, year and category:
// the central system has not assigned it a block, or its blocks are used up.
var ErrOutsideBlocks = errors.New("cert: no serial block assigned to this box covers the next serial (ask the central system for a block)")

// MaxYearSkew is how far a serial's year may lie from the box's trusted date in ValidateAt.
const MaxYearSkew = 1

// ValidateAt checks a serial as Parse does and that its year is within MaxYearSkew of now's
// year: a certificate is issued the year its training ends, so a serial of 2099 handed out in
// 2026 is a forgery or a mistake.
func ValidateAt(s string, now time.Time) (Serial, error) {
	sn, err := Parse(s)
	if err != nil {
		return sn, err
	}
	if y := now.Year(); sn.Year < y-MaxYearSkew || sn.Year > y+MaxYearSkew {
		return sn, fmt.Errorf("cert: %s: year %d is more than %d year(s) from this box's date (%d)", s, sn.Year, MaxYearSkew, y)
	}
	return sn, nil
}
