package zkpush_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/zkpush"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

func TestParsePunch(t *testing.T) {
	cases := []struct {
		line    string
		alnum   bool
		wantErr string
		wantKey string
	}{
		{"1452\t2026-03-02 08:01:28\t0\t15\t0\t0\t0", false, "", "S|1452|2026-03-02 08:01:28|0|15"},
		{"1452\t2026-03-02 08:01:28\t1\t1\r", false, "", "S|1452|2026-03-02 08:01:28|1|1"},
		{"1452\t2026-03-02 08:01:28\t0\t15\t0\t0\t0\t255\t0\t0", false, "", "S|1452|2026-03-02 08:01:28|0|15"}, // later firmware adds fields
		{"A12\t2026-03-02 08:01:28\t0\t15", true, "", "S|A12|2026-03-02 08:01:28|0|15"},
		{"A12\t2026-03-02 08:01:28\t0\t15", false, "want digits", ""},
		{"1452\t2026-03-02 08:01:28", false, "2 fields", ""},
		{"1452\t2026-02-30 08:01:28\t0\t15", false, "YYYY-MM-DD", ""},
		{"1452\t02/03/2026 08:01\t0\t15", false, "YYYY-MM-DD", ""},
		{"\t2026-03-02 08:01:28\t0\t15", false, "1 to 24", ""},
		{"1452\t2026-03-02 08:01:28\tin\t15", false, "status", ""},
		{"1452\t2026-03-02 08:01:28\t0\t123456", false, "verify", ""},
		// Each limit at its edge: 16 fields, a PIN of 24, a status of four digits, every letter.
		{"1452\t2026-03-02 08:01:28\t0\t15" + strings.Repeat("\t0", 12), false, "", "S|1452|2026-03-02 08:01:28|0|15"},
		{"1452\t2026-03-02 08:01:28\t0\t15" + strings.Repeat("\t0", 13), false, "17 fields", ""},
		{strings.Repeat("9", 24) + "\t2026-03-02 08:01:28\t0\t15", false, "", "S|" + strings.Repeat("9", 24) + "|2026-03-02 08:01:28|0|15"},
		{strings.Repeat("9", 25) + "\t2026-03-02 08:01:28\t0\t15", false, "1 to 24", ""},
		{"1452\t2026-03-02 08:01:28\t9999\t15", false, "", "S|1452|2026-03-02 08:01:28|9999|15"},
		{"1452\t2026-03-02 08:01:28\t10000\t15", false, "status", ""},
		{"09AZaz\t2026-03-02 08:01:28\t0\t15", true, "", "S|09AZaz|2026-03-02 08:01:28|0|15"},
		{"a`\t2026-03-02 08:01:28\t0\t15", true, "letters and digits", ""},
		{"a{\t2026-03-02 08:01:28\t0\t15", true, "letters and digits", ""},
		{"a@\t2026-03-02 08:01:28\t0\t15", true, "letters and digits", ""},
		{"a[\t2026-03-02 08:01:28\t0\t15", true, "letters and digits", ""},
		{"1/\t2026-03-02 08:01:28\t0\t15", false, "want digits", ""},
		{"1:\t2026-03-02 08:01:28\t0\t15", false, "want digits", ""},
	}
	for _, c := range cases {
		p, err := zkpush.ParsePunch(c.line, shanghai, c.alnum)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.HasPrefix(err.Error(), "zkpush: ") {
				t.Errorf("%q: got error %v, want one saying %q", c.line, err, c.wantErr)
			}
			continue
		}
		if err != nil || p.Key("S") != c.wantKey {
			t.Errorf("%q: got key %q, %v; want %q", c.line, p.Key("S"), err, c.wantKey)
		}
	}
}

func TestParsePhotoSeparators(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 1, 28, 0, shanghai)
	jpg := emu.Capture(7)
	head := "PIN=20260302080128-1452.jpg\nSN=ZK1\nsize=" + itoa(len(jpg)) + "\nCMD=uploadphoto"
	for name, body := range map[string][]byte{
		"nul (the protocol's)": zkpush.EncodePhoto("ZK1", "1452", at, jpg),
		"newline":              append([]byte(head+"\n"), jpg...),
		"picture=":             append([]byte(head+"\npicture="), jpg...),
		"no size, no .jpg":     append([]byte("PIN=20260302080128-1452\nCMD=uploadphoto\x00"), jpg...),
	} {
		p, err := zkpush.ParsePhoto(body, shanghai, false)
		if err != nil || p.PIN != "1452" || !p.At.Equal(at) || !bytes.Equal(p.JPEG, jpg) {
			t.Errorf("%s: got PIN %q at %v, %d bytes, %v; want 1452 at %v, %d bytes", name, p.PIN, p.At, len(p.JPEG), err, at, len(jpg))
		}
	}
	// Cut short: size says more than came.
	short := zkpush.EncodePhoto("ZK1", "1452", at, jpg)
	if _, err := zkpush.ParsePhoto(short[:len(short)-10], shanghai, false); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("a photo cut short: got %v, want an error saying so", err)
	}
}

func TestParseResults(t *testing.T) {
	rs, err := zkpush.ParseResults([]byte("ID=101&Return=0&CMD=DATA\nbogus\nID=102&Return=-10&CMD=DATA\r\n"))
	if len(rs) != 2 || rs[0].ID != "101" || rs[0].Return != 0 || rs[1].ID != "102" || rs[1].Return != -10 || rs[1].Cmd != "DATA" {
		t.Errorf("got %+v, want results 101/0 and 102/-10", rs)
	}
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("got error %v, want one naming line 2", err)
	}
}

func TestDecodeName(t *testing.T) {
	gbk := []byte{0xd5, 0xc5, 0xc8, 0xfd} // 张三 in GBK
	if got := zkpush.DecodeName(gbk); got != "张三" {
		t.Errorf("GBK: got %q, want 张三", got)
	}
	if got := zkpush.DecodeName([]byte("张三")); got != "张三" {
		t.Errorf("UTF-8: got %q, want 张三", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The JPEG of a photo upload may start up to 64 bytes after CMD=, not further; a value quoted in
// an error is clipped after 40 bytes, so a hostile line cannot flood the log.
func TestParseEdges(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 1, 28, 0, shanghai)
	jpg := emu.Capture(7)
	for _, pad := range []int{64 - len("CMD=uploadphoto"), 65 - len("CMD=uploadphoto")} {
		body := append([]byte("PIN=20260302080128-1452\nCMD=uploadphoto"+strings.Repeat("\x00", pad)), jpg...)
		p, err := zkpush.ParsePhoto(body, shanghai, false)
		if at64 := pad+len("CMD=uploadphoto") == 64; at64 && (err != nil || !p.At.Equal(at) || !bytes.Equal(p.JPEG, jpg)) {
			t.Errorf("the JPEG 64 bytes after CMD=: got %d bytes, %v; want the picture", len(p.JPEG), err)
		} else if !at64 && err == nil {
			t.Errorf("the JPEG 65 bytes after CMD=: accepted, want refused")
		}
	}
	for _, n := range []int{40, 41} {
		v := strings.Repeat("7", n)
		_, err := zkpush.ParsePunch("1452\t2026-03-02 08:01:28\t"+v+"\t15", shanghai, false)
		want := strconv.Quote(v)
		if n > 40 {
			want = strconv.Quote(v[:40] + "...")
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a status of %d digits: got %v, want it quoted as %s", n, err, want)
		}
	}
}

// Command ids are 1 to 16 letters and digits: each end of each range is taken, its neighbours
// and a 17th character are not; a photo's size of 0 is no byte count.
func TestParseResultsIDsAndPhotoSize(t *testing.T) {
	for _, id := range []string{"09", "AZ", "az", strings.Repeat("z", 16)} {
		rs, err := zkpush.ParseResults([]byte("ID=" + id + "&Return=0&CMD=DATA\n"))
		if err != nil || len(rs) != 1 || rs[0].ID != id {
			t.Errorf("id %q: got %+v, %v; want it taken", id, rs, err)
		}
	}
	for _, id := range []string{"1/", "1:", "A@", "A[", "a`", "a{", strings.Repeat("z", 17)} {
		if rs, err := zkpush.ParseResults([]byte("ID=" + id + "&Return=0&CMD=DATA\n")); err == nil || len(rs) != 0 {
			t.Errorf("id %q: got %+v, %v; want the line refused", id, rs, err)
		}
	}
	jpg := emu.Capture(7)
	if _, err := zkpush.ParsePhoto(append([]byte("PIN=20260302080128-1452.jpg\nsize=0\nCMD=uploadphoto\x00"), jpg...), shanghai, false); err == nil || !strings.Contains(err.Error(), "byte count") {
		t.Errorf("size=0: got %v, want it refused", err)
	}
}
