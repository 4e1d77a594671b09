package zkpush_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kaoqin/kaoqin/drivers/zkpush"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

func FuzzParsePunch(f *testing.F) {
	for _, s := range []string{
		"1452\t2026-03-02 08:01:28\t0\t15\t0\t0\t0",
		"1\t2026-03-02 08:01:28\t1\t1",
		"1453\t2026-03-02 08:01:29",
		"14x5\t2026-03-02 08:01:28\t0\t15\t0\t0\t0",
		"1454\t2026-02-30 08:01:28\t0\t15\t0\t0\t0",
		"\t\t\t",
		"1\t2026-03-02 08:01:28\t99999\t-1\r",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, line string, alnum bool) {
		p, err := zkpush.ParsePunch(line, shanghai, alnum)
		if err != nil {
			return
		}
		if p.PIN == "" || p.At.IsZero() {
			t.Fatalf("accepted %q with PIN %q time %v", line, p.PIN, p.At)
		}
		// A decoded punch's key round-trips through a line of its own.
		again, err := zkpush.ParsePunch(emu.Punch{PIN: p.PIN, At: p.At, Status: p.Status, Verify: p.Verify}.Line(), shanghai, alnum)
		if err != nil || again.Key("S") != p.Key("S") {
			t.Fatalf("round trip of %q: got %+v, %v", line, again, err)
		}
	})
}

func FuzzParsePhoto(f *testing.F) {
	at := time.Date(2026, 3, 2, 8, 1, 28, 0, shanghai)
	f.Add(zkpush.EncodePhoto("ZK1", "1452", at, emu.Capture(1)))
	f.Add([]byte("PIN=20260302080128-1452.jpg\nSN=ZK1\nsize=4\nCMD=uploadphoto\n\xff\xd8\xff\xe0"))
	f.Add([]byte("PIN=20260302080128-1452\nCMD=uploadphoto\npicture=\xff\xd8\xff"))
	f.Add([]byte("PIN=x\nsize=-1\nCMD=uploadphoto\x00\xff\xd8\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := zkpush.ParsePhoto(body, shanghai, false)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(p.JPEG, []byte{0xFF, 0xD8, 0xFF}) || p.PIN == "" {
			t.Fatalf("accepted a photo with PIN %q and %d bytes not starting with the JPEG marker", p.PIN, len(p.JPEG))
		}
	})
}

func FuzzParseResults(f *testing.F) {
	f.Add([]byte("ID=101&Return=0&CMD=DATA\nID=102&Return=-10&CMD=DATA\n"))
	f.Add([]byte("ID=&Return=x\n\nID=1&Return=0"))
	f.Add([]byte("Return=0&ID=abcdefghijklmnopq&CMD=DATA"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, _ := zkpush.ParseResults(body)
		for _, r := range rs {
			if r.ID == "" || len(r.ID) > 16 {
				t.Fatalf("accepted id %q", r.ID)
			}
		}
	})
}

func FuzzParseCommands(f *testing.F) {
	f.Add([]byte("C:101:DATA UPDATE USERINFO PIN=1452\tName=张三\tPri=0\tPasswd=\tCard=\tGrp=1\nC:102:DATA DELETE USERINFO PIN=1452\n"))
	f.Add([]byte("OK"))
	f.Add([]byte("C::x\nC:1\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		cs, _ := zkpush.ParseCommands(body)
		for _, c := range cs {
			if c.ID == "" || len(c.Text) == 0 {
				t.Fatalf("accepted command %+v", c)
			}
		}
	})
}

func FuzzFieldsAndNames(f *testing.F) {
	gbk, _ := zkpush.EncodeGB18030("张三")
	f.Add(append([]byte("PIN=1452\tName="), gbk...))
	f.Add([]byte("PIN=1\tName=Li Si\tPri=0\t=\tName=dup"))
	f.Add([]byte{0xff, 0xfe, 0x81})
	f.Fuzz(func(t *testing.T, rec []byte) {
		for k, v := range zkpush.Fields(rec) {
			if k == "" {
				t.Fatal("an empty key")
			}
			_ = zkpush.DecodeName(v)
		}
		if s := zkpush.DecodeName(rec); !utf8.ValidString(s) {
			t.Fatalf("DecodeName(%q) = %q, not UTF-8", rec, s)
		}
	})
}

// FuzzServer sends whatever a LAN client could to a live server: any path, query and body.
// Every answer must be an HTTP status, never a dropped connection (a panic) or a hang.
func FuzzServer(f *testing.F) {
	f.Add("/iclock/cdata", "table=ATTLOG&Stamp=1", []byte("1\t2026-03-02 08:00:00\t0\t15\t0\t0\t0\n"))
	f.Add("/iclock/cdata", "table=ATTPHOTO", zkpush.EncodePhoto("ZKF", "1", time.Date(2026, 3, 2, 8, 0, 0, 0, shanghai), emu.Capture(1)))
	f.Add("/iclock/cdata", "table=OPERLOG", []byte("USER PIN=1\tName=\xd5\xc5\xc8\xfd\nOPLOG 4\t0\n"))
	f.Add("/iclock/devicecmd", "", []byte("ID=1&Return=0&CMD=DATA\n"))
	f.Add("/iclock/getrequest", "INFO=x", []byte(nil))
	f.Add("/iclock/cdata", "table=ATTLOG&SN=other", []byte("\x00\xff"))
	c := config(f, "ZKF", "127.0.0.1:0")
	r := openF(f, c)
	f.Fuzz(func(t *testing.T, path, query string, body []byte) {
		u, err := url.Parse(r.url + "/")
		if err != nil {
			return
		}
		u.Path = path
		u.RawQuery = "SN=ZKF&" + url.QueryEscape(query)
		if strings.Contains(query, "=") {
			u.RawQuery = "SN=ZKF&" + query
		}
		resp, err := http.Post(u.String(), "text/plain", bytes.NewReader(body))
		if err != nil {
			if strings.Contains(err.Error(), "invalid") || strings.Contains(err.Error(), "unsupported") {
				return // the client refused to send it
			}
			t.Fatalf("POST %q: %v", u, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != 503 {
			t.Fatalf("POST %q %q: status %d", u, body, resp.StatusCode)
		}
	})
}
