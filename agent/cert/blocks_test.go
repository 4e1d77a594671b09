package cert

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const blocksJSON = `{"version":2,"device":"box-1","issued":"2026-01-01T00:00:00Z","blocks":[
{"city":"3701","county":"02","institution":"0001","year":2026,"category":"A","first":1,"last":3},
{"city":"3701","county":"02","institution":"0001","year":2026,"category":"A","first":10,"last":11}]}`

func TestBlocksNextIn(t *testing.T) {
	bs, err := DecodeBlocks([]byte(blocksJSON))
	if err != nil {
		t.Fatal(err)
	}
	iss := Issuer{City: "3701", County: "02", Institution: "0001"}
	for _, c := range []struct{ last, want int }{{0, 1}, {2, 3}, {3, 10}, {5, 10}, {10, 11}} {
		if got, err := bs.NextIn(iss, 2026, Employment, c.last); err != nil || got != c.want {
			t.Errorf("after %d: got %d %v, want %d", c.last, got, err, c.want)
		}
	}
	if _, err := bs.NextIn(iss, 2026, Employment, 11); !errors.Is(err, ErrOutsideBlocks) {
		t.Errorf("after the last block: got %v, want ErrOutsideBlocks", err)
	}
	if _, err := bs.NextIn(iss, 2026, Upgrading, 0); !errors.Is(err, ErrOutsideBlocks) {
		t.Errorf("another category: got %v, want ErrOutsideBlocks", err)
	}
	qingdao := Issuer{City: "3702", County: "00", Institution: "0001"}
	if _, err := bs.NextIn(qingdao, 2026, Employment, 0); !errors.Is(err, ErrOutsideBlocks) {
		t.Errorf("Qingdao's 0001 with Jinan's blocks: got %v, want ErrOutsideBlocks", err)
	}
}

func TestBlocksRefused(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"version":1,"device":"b","blocks":[{"city":"3701","county":"02","institution":"0001","year":2026,"category":"A","first":5,"last":4}]}`, "range 5-4"},
		{`{"version":1,"device":"b","blocks":[{"city":"3701","county":"02","institution":"0001","year":2026,"category":"A","first":1,"last":5},{"city":"3701","county":"02","institution":"0001","year":2026,"category":"A","first":5,"last":9}]}`, "overlaps"},
		{`{"version":0,"device":"b","blocks":[]}`, "version"},
		{`{"version":1,"device":"b","blocks":[],"extra":1}`, "unknown field"},
	} {
		if _, err := DecodeBlocks([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.json, err, c.want)
		}
	}
}

func TestValidateAt(t *testing.T) {
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	if _, err := ValidateAt("37010200012600001A", now); err != nil {
		t.Errorf("this year's serial: %v", err)
	}
	if _, err := ValidateAt("37010200019900001A", now); err == nil || !strings.Contains(err.Error(), "year 2099") {
		t.Errorf("2099 in 2026: got %v, want a refusal naming the year", err)
	}
}

// FuzzDecodeBlocks: a blocks dataset is refused with an error or decodes to blocks whose every
// range NextIn can walk without leaving it.
func FuzzDecodeBlocks(f *testing.F) {
	f.Add([]byte(blocksJSON))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		bs, err := DecodeBlocks(p)
		if err != nil {
			return
		}
		for _, b := range bs.Blocks {
			cat, _ := ParseCategory(b.Category)
			n, err := bs.NextIn(b.Issuer(), b.Year, cat, b.First-1)
			if err != nil || n != b.First {
				t.Fatalf("block %+v: NextIn from its start gave %d %v", b, n, err)
			}
		}
	})
}
