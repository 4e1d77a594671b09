package inspect

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
)

// testBackend is the pages' backend over a real store file, as the daemon's is.
type testBackend struct {
	*ops.Service
	st  *store.Store
	key ed25519.PrivateKey
}

func (b *testBackend) SpotCheck(context.Context) (int, error) { return 0, nil }

func (b *testBackend) Integrity(ctx context.Context) (ops.Integrity, error) {
	return b.Service.Verify(ctx, b.key.Public().(ed25519.PublicKey))
}
func (b *testBackend) PublicKey() (ed25519.PublicKey, error) {
	return b.key.Public().(ed25519.PublicKey), nil
}
func (b *testBackend) Submit(context.Context, drivers.Reading) (checkin.Outcome, error) {
	return checkin.Outcome{}, errors.New("no decision loop here")
}
func (b *testBackend) Enroll(context.Context, api.EnrollRequest, func(string)) (ledger.Event, error) {
	return ledger.Event{}, errors.New("no reader here")
}
func (b *testBackend) Receipt(context.Context) (*export.Receipt, error) { return nil, nil }
func (b *testBackend) Health(context.Context) (Health, error) {
	return Health{Clock: clock.Now(), DiskFree: 10 << 30, DiskReserve: 64 << 20}, nil
}
func (b *testBackend) RecordInspection(ctx context.Context, v Visit) (ledger.Event, error) {
	return b.st.Append(ledger.Event{Kind: ledger.Inspection, Time: clock.Now(), Source: "inspector", Operator: v.Inspector,
		Note: v.Note, Detail: VisitDetail(v)})
}
func (b *testBackend) ExportBundle(ctx context.Context, w io.Writer, f ledger.Filter, lang label.Lang) (export.Manifest, error) {
	return b.Service.Bundle(ctx, w, export.BundleOptions{Options: export.Options{Lang: lang}, Filter: f, Key: b.key})
}

// fixture is a box whose demo session started 5 minutes ago, with 5 trainees in class: T001
// signed in, T002 signed in by a manual override, T003 refused; T004 and T005 missing.
func fixture(t testing.TB) (*testBackend, *roster.Roster) {
	t.Helper()
	dir := t.TempDir()
	priv, _, err := ledger.GenerateKeyFiles(filepath.Join(dir, "keys"), "device")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ledger.LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Config{Path: filepath.Join(dir, "kaoqin.db"), EvidenceDir: filepath.Join(dir, "evidence"),
		Device: "box-1", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	r := demo.Roster(now, 6, 1)
	raw, _ := json.Marshal(r)
	if _, err := st.ApplyDataset(store.DatasetIn{Ref: ledger.DatasetRef{Name: store.RosterDataset, Version: r.Version, SHA256: fmt.Sprintf("%x", sha256.Sum256(raw)), Origin: store.OriginFile}, Content: raw}); err != nil {
		t.Fatal(err)
	}
	sess := r.Sessions[0].ID
	clk := ledger.Clock{Wall: now.Add(-2 * time.Minute), Synced: true}
	for _, e := range []ledger.Event{
		{Kind: ledger.SignIn, Trainee: "T001", IDMasked: roster.MaskID(r.Trainees[0].IDNumber), Session: sess, Source: "door", Method: "fingerprint", Score: 120, Time: clk},
		{Kind: ledger.SignIn, Trainee: "T002", IDMasked: roster.MaskID(r.Trainees[1].IDNumber), Session: sess, Source: "manual", Method: "manual",
			Operator: "王老师", Note: "reader broken", Flags: []ledger.Flag{ledger.FlagManualOverride}, Time: clk},
		{Kind: ledger.Refusal, Reason: ledger.ReasonLowScore, Trainee: "T003", Session: sess, Source: "door", Method: "fingerprint", Time: clk},
		{Kind: report.KindSpotCheck, Session: sess, Source: "room-cam", Time: ledger.Clock{Wall: now.Add(-time.Minute), Synced: true},
			Data: []byte(`{"headcount":4,"signed_in":2,"seen":["T001"],"not_seen":["T002"]}`)},
	} {
		if _, err := st.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	return &testBackend{Service: ops.New(st, "0001"), st: st, key: key}, r
}

// site is a running server with a browser-like client (cookies, no redirects followed).
type site struct {
	*httptest.Server
	b   *testBackend
	srv *Server
	c   *http.Client
}

func newSite(t *testing.T, b *testBackend, opt Options) *site {
	t.Helper()
	srv := New(b, opt)
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv.Protect(api.Handler(b, false)))
	mux.Handle("/", srv.Handler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &site{Server: ts, b: b, srv: srv, c: c}
}

func (s *site) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := s.c.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (s *site) post(t *testing.T, path string, form url.Values) (int, string, http.Header) {
	t.Helper()
	resp, err := s.c.PostForm(s.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in:\n%s", body)
	}
	return m[1]
}

// login logs in with a name and password (or a code when name is empty) and returns the status.
func (s *site) login(t *testing.T, name, secret string) (int, string) {
	t.Helper()
	_, body, _ := s.get(t, "/login")
	f := url.Values{"csrf": {csrfOf(t, body)}, "next": {"/"}}
	if name == "" {
		f.Set("code", secret)
	} else {
		f.Set("name", name)
		f.Set("password", secret)
	}
	code, body, _ := s.post(t, "/login", f)
	return code, body
}

func withAccount(t *testing.T, b *testBackend, name, password string) {
	t.Helper()
	h, err := HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetInspectors([]store.Inspector{{Name: name, Role: "inspector", Hash: h}}, store.InspectorsInfo{From: "local"}); err != nil {
		t.Fatal(err)
	}
}

// routes are every page and JSON route.
var routes = []string{"/", "/search", "/integrity", "/health", "/reports", "/reports/hours.csv", "/reports/sheet?session=S",
	"/reports/sheet.csv?session=S", "/visit", "/bundle", "/evidence/1/" + strings.Repeat("a", 64), "/nowhere",
	"/v1/status", "/v1/events", "/v1/roster"}

func TestEveryRouteRefusesWithoutASession(t *testing.T) {
	b, _ := fixture(t)
	s := newSite(t, b, Options{})
	for _, p := range routes {
		code, body, h := s.get(t, p)
		if strings.HasPrefix(p, "/v1/") {
			if code != http.StatusUnauthorized {
				t.Errorf("GET %s without a session: got %d, want 401", p, code)
			}
		} else if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without a session: got %d to %q, want 303 to the login page", p, code, h.Get("Location"))
		}
		if strings.Contains(body, "T001") || strings.Contains(body, "学员01") {
			t.Errorf("GET %s without a session shows a trainee", p)
		}
		if h.Get("Content-Security-Policy") == "" || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: security headers missing: %v", p, h)
		}
	}
	for _, p := range []string{"/visit", "/logout"} {
		if code, _, _ := s.post(t, p, url.Values{"headcount": {"3"}}); code != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: got %d, want 401", p, code)
		}
	}
	if n := len(b.events(t, ledger.Inspection)); n != 0 {
		t.Errorf("inspections recorded without a session: %d", n)
	}
}

func (b *testBackend) events(t *testing.T, k ledger.Kind) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	if err := b.Events(context.Background(), ledger.Filter{Kind: k}, 0, func(e *ledger.Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLoginTodayAndAccessControl(t *testing.T) {
	b, r := fixture(t)
	withAccount(t, b, "zhang", "correct horse")
	s := newSite(t, b, Options{MaxFailures: 3, Lockout: time.Minute})

	if code, body := s.login(t, "zhang", "wrong"); code != http.StatusUnauthorized || !strings.Contains(body, "账号或密码错误") {
		t.Fatalf("wrong password: got %d, want 401 with 账号或密码错误", code)
	}
	if code, _ := s.login(t, "zhang", "correct horse"); code != http.StatusSeeOther {
		t.Fatalf("login: got %d, want 303", code)
	}
	code, body, _ := s.get(t, "/")
	if code != http.StatusOK {
		t.Fatalf("today: got %d, want 200:\n%s", code, body)
	}
	sess := r.Sessions[0].ID
	for _, want := range []string{"学员01", "学员02", "人工补签 (manual_override)", `id="expected-` + sess + `">5<`,
		`id="missing-` + sess + `">3<`, "学员04 (T004)", "room-cam · 人数 4 / 已签到 2 · 在场 1, 不在场 1 (T002)", "随机抽查: 1× 不在场", "学员05 (T005)", "比对分数过低 (low_score)", roster.MaskID(r.Trainees[0].IDNumber), "<svg"} {
		if !strings.Contains(body, want) {
			t.Errorf("today lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("today has a script")
	}
	// Every page renders, and none shows a full ID number.
	for _, p := range []string{"/", "/?lang=en", "/search?q=学员0", "/search?q=T002&lang=en", "/integrity", "/health", "/reports",
		"/reports/sheet?session=" + sess, "/reports/sheet.csv?session=" + sess, "/reports/hours.csv", "/visit", "/v1/roster", "/v1/events", "/v1/status"} {
		code, body, h := s.get(t, p)
		if code != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200: %.300s", p, code, body)
		}
		for _, tr := range r.Trainees {
			if strings.Contains(body, tr.IDNumber) {
				t.Errorf("GET %s shows the full ID number of %s", p, tr.ID)
			}
		}
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", p, h.Get("Cache-Control"))
		}
	}
	if _, body, _ := s.get(t, "/?lang=en"); !strings.Contains(body, "manual override (manual_override)") || !strings.Contains(body, `lang="en"`) {
		t.Error("the English page lacks the English labels")
	}
	// The JSON API is read-only here, even with a session.
	resp, err := s.c.Post(s.URL+"/v1/signin", "application/json", strings.NewReader(`{"trainee":"T004"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/signin with a session: got %d, want 405", resp.StatusCode)
	}
}

func TestLockout(t *testing.T) {
	b, _ := fixture(t)
	withAccount(t, b, "zhang", "correct horse")
	s := newSite(t, b, Options{MaxFailures: 3, Lockout: time.Minute})
	for i := range 3 {
		code, _ := s.login(t, "zhang", "wrong")
		if want := http.StatusUnauthorized; i == 2 {
			if code != http.StatusTooManyRequests {
				t.Fatalf("failure %d: got %d, want 429", i+1, code)
			}
		} else if code != want {
			t.Fatalf("failure %d: got %d, want %d", i+1, code, want)
		}
	}
	code, body := s.login(t, "zhang", "correct horse")
	if code != http.StatusTooManyRequests || !strings.Contains(body, "已锁定") {
		t.Fatalf("the right password while locked out: got %d, want 429 with 已锁定", code)
	}
	if code, _, _ := s.get(t, "/"); code != http.StatusSeeOther {
		t.Errorf("today after a locked-out login: got %d, want 303 to login", code)
	}
}

func TestOneTimeCode(t *testing.T) {
	b, _ := fixture(t)
	s := newSite(t, b, Options{})
	c, err := s.srv.IssueCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := s.login(t, "", "WRONG-CODE"); code != http.StatusUnauthorized {
		t.Errorf("a wrong code: got %d, want 401", code)
	}
	if code, _ := s.login(t, "", strings.ToLower(c.Code)); code != http.StatusSeeOther {
		t.Fatalf("the code: got %d, want 303", code)
	}
	if code, _, _ := s.get(t, "/"); code != http.StatusOK {
		t.Fatalf("today after the code: got %d", code)
	}
	s2 := newSite(t, b, Options{})
	s2.srv = s.srv
	s2.Server.Config.Handler = s.Server.Config.Handler
	if code, _ := s2.login(t, "", c.Code); code != http.StatusUnauthorized {
		t.Errorf("the code used twice: got %d, want 401", code)
	}
	// With accounts, no codes.
	withAccount(t, b, "li", "pw")
	if _, err := s.srv.IssueCode(context.Background()); err == nil {
		t.Error("a code was issued while accounts exist")
	}
}

func TestCodeExpires(t *testing.T) {
	b, _ := fixture(t)
	now := time.Now()
	s := newSite(t, b, Options{Now: func() time.Time { return now }, CodeValid: time.Minute})
	c, _ := s.srv.IssueCode(context.Background())
	now = now.Add(2 * time.Minute)
	if code, _ := s.login(t, "", c.Code); code != http.StatusUnauthorized {
		t.Errorf("an expired code: got %d, want 401", code)
	}
}

func TestSessionExpires(t *testing.T) {
	b, _ := fixture(t)
	withAccount(t, b, "zhang", "pw")
	now := time.Now()
	s := newSite(t, b, Options{Now: func() time.Time { return now }, SessionIdle: time.Minute})
	if code, _ := s.login(t, "zhang", "pw"); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	if code, _, _ := s.get(t, "/health"); code != http.StatusOK {
		t.Fatalf("health: %d", code)
	}
	now = now.Add(2 * time.Minute)
	if code, _, _ := s.get(t, "/health"); code != http.StatusSeeOther {
		t.Errorf("after the idle time: got %d, want 303 to login", code)
	}
}

func TestBadParametersAreClear4xx(t *testing.T) {
	b, _ := fixture(t)
	withAccount(t, b, "zhang", "pw")
	s := newSite(t, b, Options{})
	if code, _ := s.login(t, "zhang", "pw"); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/?date=yesterday", 400}, {"/?date=2026-13-40", 400}, {"/?date=0001-01-01", 400},
		{"/search?since=x", 400}, {"/search?until=2026-02-30", 400}, {"/search?since=2026-03-02&until=2026-03-01", 400},
		{"/search?kind=hack", 400}, {"/search?flag=nope", 400}, {"/search?page=0", 400}, {"/search?page=-3", 400},
		{"/search?page=abc", 400}, {"/search?q=" + strings.Repeat("长", 65), 400},
		{"/reports/sheet", 400}, {"/reports/sheet?session=nope", 404}, {"/reports/sheet.csv?session=nope", 404},
		{"/reports?programme=nope", 404}, {"/bundle?since=soon", 400}, {"/bundle?until=2026-1-1", 400},
		{"/evidence/x/y", 400}, {"/evidence/0/" + strings.Repeat("a", 64), 400}, {"/evidence/1/" + strings.Repeat("a", 64), 404},
		{"/evidence/1/" + strings.Repeat("A", 64), 400}, {"/visit?recorded=x", 400}, {"/nowhere", 404},
		{"/v1/events?since=x", 400}, {"/v1/events?from_seq=x", 400}, {"/?lang=xx", 200},
	} {
		code, body, _ := s.get(t, c.path)
		if code != c.want {
			t.Errorf("GET %s: got %d, want %d: %.200s", c.path, code, c.want, body)
		}
	}
	// A visit with bad fields is refused with the form again, and nothing is recorded.
	_, body, _ := s.get(t, "/visit")
	tok := csrfOf(t, body)
	for _, f := range []url.Values{
		{"csrf": {tok}, "headcount": {"many"}}, {"csrf": {tok}, "headcount": {"-1"}}, {"csrf": {tok}, "headcount": {"3"}, "head": {"not hex!"}},
		{"csrf": {tok}, "headcount": {"3"}, "note": {strings.Repeat("注", 501)}},
	} {
		if code, _, _ := s.post(t, "/visit", f); code != http.StatusBadRequest {
			t.Errorf("POST /visit %v: got %d, want 400", f, code)
		}
	}
	if code, _, _ := s.post(t, "/visit", url.Values{"csrf": {"forged"}, "headcount": {"3"}}); code != http.StatusForbidden {
		t.Errorf("POST /visit with a forged token: got %d, want 403", code)
	}
	if n := len(b.events(t, ledger.Inspection)); n != 0 {
		t.Errorf("bad visits recorded: %d", n)
	}
}

func TestVisitIsRecorded(t *testing.T) {
	b, _ := fixture(t)
	withAccount(t, b, "zhang", "pw")
	s := newSite(t, b, Options{})
	s.login(t, "zhang", "pw")
	_, ib, _ := s.get(t, "/integrity")
	if !strings.Contains(ib, "完好") {
		t.Fatalf("integrity of an untouched ledger is not intact:\n%s", ib)
	}
	in, _ := b.Integrity(context.Background())
	if _, today, _ := s.get(t, "/"); strings.Contains(today, "现场检查 (inspection)") {
		t.Fatal("today shows an inspection before any")
	}
	_, body, _ := s.get(t, "/visit")
	code, _, h := s.post(t, "/visit", url.Values{"csrf": {csrfOf(t, body)}, "headcount": {"2"}, "note": {"two in the room"}, "head": {in.HeadHash[:12]}})
	if code != http.StatusSeeOther {
		t.Fatalf("POST /visit: got %d, want 303", code)
	}
	evs := b.events(t, ledger.Inspection)
	if len(evs) != 1 || evs[0].Operator != "zhang" || evs[0].Note != "two in the room" || !strings.Contains(evs[0].Detail, "headcount 2") || !strings.Contains(evs[0].Detail, "matches") {
		t.Fatalf("inspection events: got %+v, want one by zhang, headcount 2, hash matching", evs)
	}
	// The today page read the day once; it sees what was appended since.
	if _, today, _ := s.get(t, "/"); !strings.Contains(today, "现场检查 (inspection)") || !strings.Contains(today, "two in the room") {
		t.Error("today does not show the inspection recorded after its first view")
	}
	_, done, _ := s.get(t, h.Get("Location"))
	if !strings.Contains(done, "已记录") || !strings.Contains(done, "链头哈希与账本一致") {
		t.Errorf("the visit page after recording lacks the confirmation:\n%s", done)
	}
}
