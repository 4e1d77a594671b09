package ingest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// columnBodies are bodies as boxes seal them (every optional field the columns read, and fields
// they skip holding escapes and non-ASCII text), and bodies that only json.Unmarshal reads.
func columnBodies(t testing.TB) (sealed, other [][]byte) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 8, 0, 1, 500, time.FixedZone("CST", 8*3600))
	events := []ledger.Event{
		{Kind: ledger.SignIn, Method: "fingerprint", Trainee: "T00042", Session: "S-0001-AM", Institution: "0001",
			Source: "fp1", IDMasked: "370102********1234", Score: 87.5, Margin: 12, Flags: []ledger.Flag{"late", "clock_unsynced"},
			Evidence: []ledger.Photo{{SHA256: "ab", Kind: "crop", Size: 1234}, {SHA256: "cd", Kind: "frame", Size: 0}}},
		{Kind: ledger.SignOut, Trainee: "T1", Note: `a "quoted" note\ with <html> & 中文`, Detail: "line\nbreak\ttab\u0001",
			Data: []byte{0, 1, 2, 250}, Dataset: &ledger.DatasetRef{Name: "roster", Version: 3}},
		{Kind: ledger.Refusal, Reason: "unknown", Evidence: []ledger.Photo{}},
		{Kind: ledger.SignIn, Trainee: "张三"}, // a column with non-ASCII text: json.Unmarshal reads it
		{Kind: ledger.SignIn, Time: ledger.Clock{Wall: time.Time{}}},
	}
	for i, e := range events {
		e.Device, e.Epoch, e.Seq, e.ID = "jn-0001-r101", 7, uint64(i+1), ledger.NewID(at)
		if e.Time.Wall.IsZero() && i != len(events)-1 {
			e.Time = ledger.Clock{Wall: at.Add(time.Duration(i) * time.Hour), Mono: 42, Boot: "b", Synced: true}
		}
		r, err := ledger.Seal(&e, [32]byte{}, key)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, r.Body())
	}
	other = [][]byte{
		[]byte(`{}`),
		[]byte(` {"kind":"sign_in"}`),
		[]byte(`{"kind":"sign_in","KIND":"x"}`),
		[]byte(`{"kind":"a","kind":"b"}`),
		[]byte(`{"kind":5}`),
		[]byte(`{"kind":null,"flags":null,"time":null}`),
		[]byte(`{"time":{"wall":"x"}}`),
		[]byte(`{"time":{"Wall":"2026-11-27T08:00:00Z"}}`),
		[]byte(`{"evidence":[{"size":1.5}]}`),
		[]byte(`{"evidence":[{"size":-0}],"x":[1e5,-0.5,"\u00e9",{"a":[true,false,null]}]}`),
		[]byte(`{"evidence":[null]}`),
		[]byte(`{"flags":["a",null]}`),
		[]byte(`{"x":01}`),
		[]byte(`{"x":"\q"}`),
		[]byte(`{"kind":"a"}x`),
		[]byte(`{"kind":"sign\u005fin"}`),
		[]byte(`{"trainee":"T\\1"}`),
		[]byte(`{"ſession":"S1","\u212aind":"x","Kind":"y"}`), // keys json.Unmarshal folds onto columns
		[]byte(`{"evidence":[{"sha256":"ab","SHA256":"cd","size":99999999999999999999}]}`),
		[]byte(`{"kind":"a","ki`), // cut short inside a key
		[]byte(`{"kind":"a","`),
	}
	return sealed, other
}

// The fast reader reads every body a box seals the way json.Unmarshal does, and leaves the
// rest to it.
func TestDecodeFastReadsSealedBodies(t *testing.T) {
	sealed, _ := columnBodies(t)
	for i, b := range sealed {
		got, ok := decodeFast(b)
		if want := i != 3; ok != want { // the fourth has a trainee in Chinese
			t.Fatalf("body %d: fast path taken: %v, want %v\n%s", i, ok, want, b)
		}
		if ok {
			sameColumns(t, b, got)
		}
	}
	// Keys the columns skip, of every character a key may have, are read on the fast path too.
	for _, b := range []string{`{"kind":"a","z_09":[1,{"y":"9"}]}`, `{"a0_z9":null,"kind":"a"}`} {
		got, ok := decodeFast([]byte(b))
		if !ok {
			t.Fatalf("%s: not read on the fast path", b)
		}
		sameColumns(t, []byte(b), got)
	}
	d, ok := decodeFast(sealed[0])
	if !ok || d.kind != "sign_in" || d.trainee != "T00042" || d.session != "S-0001-AM" || d.method != "fingerprint" ||
		d.institution != "0001" || fmt.Sprint(d.flags) != "[late clock_unsynced]" || len(d.evidence) != 2 ||
		d.evidence[0] != (ledger.Photo{SHA256: "ab", Kind: "crop", Size: 1234}) ||
		!d.wall.Equal(time.Date(2026, 11, 27, 0, 0, 1, 500, time.UTC)) {
		t.Fatalf("got %+v, want the sign-in's columns", d)
	}
}

// sameColumns fails unless got is what json.Unmarshal reads from body.
func sameColumns(t *testing.T, body []byte, got decoded) {
	t.Helper()
	want := decodeJSON(append(make(ledger.Record, ledger.SigSize), body...))
	gw, ww := got.wall, want.wall
	got.wall, want.wall = time.Time{}, time.Time{}
	_, go_ := gw.Zone()
	_, wo := ww.Zone()
	if !reflect.DeepEqual(got, want) || !gw.Equal(ww) || go_ != wo {
		t.Fatalf("body %q:\n got %+v (wall %v)\nwant %+v (wall %v)", body, got, gw, want, ww)
	}
}

// Whenever the fast reader answers, it answers as json.Unmarshal does.
func FuzzDecodeFastAsJSON(f *testing.F) {
	sealed, other := columnBodies(f)
	for _, b := range append(sealed, other...) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, ok := decodeFast(body); ok {
			sameColumns(t, body, got)
		}
	})
}

// The fast reader's reach, each at its edge: what it must read itself (the shapes a box writes,
// and any valid member it skips), and what it must leave to json.Unmarshal. Either way the
// columns are json.Unmarshal's; this holds the speed the consumers count on.
func TestDecodeFastEdges(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	nestObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tc := range []struct {
		body string
		fast bool
	}{
		{`{"kind":"a","az09_":1}`, true},                     // every kind of byte a key may hold, at the ends of its ranges
		{`{"kind":"a","a{":1}`, false},                       // other bytes: left to json.Unmarshal, which folds case
		{`{"kind":"a","a/":1}`, false},                       //
		{`{"kind":"a","a:":1}`, false},                       //
		{"{\"kind\":\"a b\x7f~\"}", true},                    // a column's printable ASCII, space and DEL included
		{"{\"kind\":\"a\x1f\"}", false},                      // a control byte (json.Unmarshal refuses it)
		{"{\"kind\":\"a\x80\"}", false},                      // a byte past ASCII (json.Unmarshal replaces it)
		{`{"kind":"a\/"}`, false},                            // an escape in a column
		{`{"evidence":[{"size":999999999999999999}]}`, true}, // 18 digits
		{`{"evidence":[{"size":1000000000000000000}]}`, false},
		{`{"evidence":[{"size":0},{"size":-9},{"size":9}]}`, true},
		{`{"evidence":[{"size":-0}]}`, false},
		{`{"evidence":[{"size":00}]}`, false},
		{`{"evidence":[{"size":1e2}]}`, false},
		{`{"evidence":[{"size":1.0}]}`, false},
		{`{"note":"a b\u09af\uAF00","x":"\u0aF9"}`, true}, // skipped strings: space, and hex digits at their ends
		{`{"note":"\u0agF"}`, false},
		{"{\"note\":\"a\x1fb\"}", false},
		{`{"x":[0,9,-0.5e+10,1E-2,0.0,1e5,true,false,null,{},[]]}`, true},
		{`{"x":` + nest(64) + `}`, true}, // as deep as the skipper goes
		{`{"x":` + nest(65) + `}`, false},
		{`{"x":` + nestObj(64) + `}`, true},
		{`{"x":` + nestObj(65) + `}`, false},
		{`{"x":`, false},
		{`{"x":[`, false},
		{`{"x":"a\`, false},
		{`{"kind":"ab`, false}, // cut short inside each kind of value: nothing read past the end
		{`{"evidence":[{"size":12`, false},
		{`{"x":12`, false},
		{`{"x":"ab`, false},
		{`{"x":"a\u00`, false},
		{`{"x":tru`, false},
	} {
		body := []byte(tc.body)
		got, ok := decodeFast(body[:len(body):len(body)]) // reading past the end panics, even within the array
		if ok != tc.fast {
			t.Errorf("%s: read on the fast path %v, want %v", tc.body, ok, tc.fast)
		}
		if ok {
			sameColumns(t, []byte(tc.body), got)
		}
	}
}
