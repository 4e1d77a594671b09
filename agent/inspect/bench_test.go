package inspect

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
)

// benchBox is a box whose ledger (a real bbolt file) holds one day of a 200-trainee class with
// four sessions: every trainee signs in and out of each (the last still in progress at 16:00),
// one in ten late, one in fifty by a manual override, plus a refusal each.
func benchBox(b *testing.B) (*testBackend, time.Time) {
	b.Helper()
	zone, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		zone = time.FixedZone("CST", 8*3600)
	}
	day := func(h, m int) time.Time { return time.Date(2026, 3, 27, h, m, 0, 0, zone) }
	r := &roster.Roster{Version: 1, Issued: day(0, 0),
		Institutions: []roster.Institution{{Code: "0001", City: "3701", County: "02", Name: "学校"}},
		Programmes:   []roster.Programme{{ID: "P", Institution: "0001", Occupation: "电工", Category: "A", Hours: 80}}}
	for i, s := range [][2]int{{8, 0}, {10, 0}, {13, 0}, {15, 0}} {
		r.Sessions = append(r.Sessions, roster.Session{ID: fmt.Sprintf("S%d", i), Programme: "P", Class: "C",
			Start: day(s[0], s[1]), End: day(s[0]+1, s[1]+45)})
	}
	for i := range 200 {
		r.Trainees = append(r.Trainees, roster.Trainee{ID: fmt.Sprintf("T%03d", i), Name: fmt.Sprintf("学员%03d", i),
			IDNumber: roster.WithCheckChar(fmt.Sprintf("370102199001%05d", i)), Enrolments: []roster.Enrolment{{Class: "C"}}})
	}
	dir := b.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	st, err := store.Open(store.Config{Path: filepath.Join(dir, "kaoqin.db"), Device: "box-1", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	raw, _ := json.Marshal(r)
	if _, err := st.ApplyDataset(store.DatasetIn{Ref: ledger.DatasetRef{Name: store.RosterDataset, Version: r.Version, SHA256: fmt.Sprintf("%x", sha256.Sum256(raw)), Origin: store.OriginFile}, Content: raw}); err != nil {
		b.Fatal(err)
	}
	add := func(e ledger.Event) {
		if _, err := st.Append(e); err != nil {
			b.Fatal(err)
		}
	}
	for si, s := range r.Sessions {
		for i, t := range r.Trainees {
			when := s.Start.Add(-10*time.Minute + time.Duration(i)*time.Second)
			in := ledger.Event{Kind: ledger.SignIn, Trainee: t.ID, IDMasked: roster.MaskID(t.IDNumber), Session: s.ID, Source: "door", Method: "fingerprint", Score: 100}
			if i%10 == 0 {
				when = s.Start.Add(15 * time.Minute)
				in.Flags = append(in.Flags, ledger.FlagLate)
			}
			if i%50 == 0 {
				in.Method, in.Operator, in.Note = "manual", "王老师", "reader broken"
				in.Flags = append(in.Flags, ledger.FlagManualOverride)
			}
			add(ledger.Event{Kind: ledger.Refusal, Reason: ledger.ReasonLowScore, Trainee: t.ID, Source: "door", Time: ledger.Clock{Wall: when.Add(-time.Minute), Synced: true}})
			in.Time = ledger.Clock{Wall: when, Synced: true}
			add(in)
			if si < 3 {
				add(ledger.Event{Kind: ledger.SignOut, Trainee: t.ID, Session: s.ID, Source: "door", Method: "fingerprint", Score: 100,
					Time: ledger.Clock{Wall: s.End.Add(time.Duration(i) * time.Second), Synced: true}})
			}
		}
	}
	return &testBackend{Service: ops.New(st, "0001"), st: st, key: key}, day(16, 0)
}

// BenchmarkInspectorPages measures the server time of the today page and of the class-hour
// report page (reading the events from the store, computing, rendering the HTML) for a
// 200-trainee, 4-session day, beside the baseline of a bare read of the same events from the same
// store in the same run: the first today page of a server (cold: it decodes the day's records),
// then today and hours again (warm: only records appended since are read). Target: under 50 ms
// each (ms and x-target are reported).
func BenchmarkInspectorPages(b *testing.B) {
	bk, now := benchBox(b)
	var h http.Handler
	var ss *session
	from := time.Date(2026, 3, 27, 0, 0, 0, 0, now.Location())
	get := func(path string) int {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(&http.Cookie{Name: cookieSession, Value: ss.id})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "学员199") {
			b.Fatalf("GET %s: %d", path, rec.Code)
		}
		return rec.Body.Len()
	}
	var bare, cold, today, hours time.Duration
	events := 0
	b.ResetTimer()
	for range b.N {
		// Interleaved, so that a change of load on a shared machine weighs on all alike.
		start := time.Now()
		events = 0
		if err := bk.Events(context.Background(), ledger.Filter{Since: from.Add(-time.Hour), Until: from.AddDate(0, 0, 1)}, 0, func(e *ledger.Event) error {
			events++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		// A new server: the first page reads and decodes the day's records (cold); the next
		// pages read only what was appended since (none here).
		srv := New(bk, Options{Zone: now.Location(), Now: func() time.Time { return now }})
		h, ss = srv.Handler(), srv.sess.create("bench", "inspector", now)
		start = time.Now()
		get("/?date=2026-03-27")
		cold += time.Since(start)
		start = time.Now()
		get("/?date=2026-03-27")
		today += time.Since(start)
		start = time.Now()
		get("/reports")
		hours += time.Since(start)
	}
	b.StopTimer()
	n := time.Duration(b.N)
	ms := func(d time.Duration) float64 { return float64((d / n).Microseconds()) / 1000 }
	b.ReportMetric(float64(events), "events")
	b.ReportMetric(ms(bare), "bare-read-ms")
	b.ReportMetric(ms(cold), "today-cold-ms")
	b.ReportMetric(ms(today), "today-ms")
	b.ReportMetric(ms(hours), "hours-ms")
	b.ReportMetric(float64(cold)/float64(max(bare, 1)), "cold/bare")
	b.ReportMetric(float64(today)/float64(max(bare, 1)), "today/bare")
	b.ReportMetric(float64(hours)/float64(max(bare, 1)), "hours/bare")
	b.ReportMetric(float64(max(cold, today, hours)/n)/float64(50*time.Millisecond), "x-target")
}
