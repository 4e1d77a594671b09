package inspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
)

// ---- login ----

type loginBody struct {
	Next      string
	Accounts  bool // accounts exist: name and password; otherwise a one-time code
	Error     string
	Locked    string
	LoginCSRF string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "", time.Time{})
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, errKey string, locked time.Time) {
	accts, err := s.b.Inspectors(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	// One login token per browser until it logs in: a second login page (another tab, or a
	// favicon request sent to the login page) must not void the form of the first.
	tok := ""
	if c, err := r.Cookie(cookieLogin); err == nil && len(c.Value) == 43 {
		tok = c.Value
	} else {
		tok = token()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieLogin, Value: tok, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 3600})
	b := loginBody{Next: safeNext(r.FormValue("next")), Accounts: len(accts) > 0, LoginCSRF: tok}
	if errKey != "" {
		b.Error = text(langOf(r), errKey)
	}
	if !locked.IsZero() {
		b.Locked = locked.In(s.opt.Zone).Format("15:04:05")
	}
	s.render(w, code, "login", s.newView(r, "login", "login", b))
}

// safeNext keeps a redirect after login on this site.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") || strings.ContainsAny(n, "\r\n") {
		return "/"
	}
	return n
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "badParam", "form")
		return
	}
	c, err := r.Cookie(cookieLogin)
	if err != nil || c.Value == "" || r.PostFormValue("csrf") != c.Value || !sameOrigin(r) {
		s.renderLogin(w, r, http.StatusForbidden, "badCSRF", time.Time{})
		return
	}
	now := s.opt.Now()
	addr := clientAddr(r)
	name := strings.TrimSpace(r.PostFormValue("name"))
	if until := s.byAddr.locked(addr, now); !until.IsZero() {
		s.renderLogin(w, r, http.StatusTooManyRequests, "lockedOut", until)
		return
	}
	if name != "" {
		if until := s.byName.locked(name, now); !until.IsZero() {
			s.renderLogin(w, r, http.StatusTooManyRequests, "lockedOut", until)
			return
		}
	}
	accts, err := s.b.Inspectors(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	user, role, ok := "", "", false
	errKey := "badLogin"
	if len(accts) == 0 {
		errKey = "badCode"
		if s.codes.use(r.PostFormValue("code"), now) {
			user, role, ok = "one-time-code", "inspector", true
		}
	} else {
		for _, a := range accts {
			if a.Name != name {
				continue
			}
			match, err := CheckPassword(a.Hash, r.PostFormValue("password"))
			if err != nil {
				s.log.Error("inspector account has an unreadable password hash", "name", a.Name, "err", err)
			}
			user, role, ok = a.Name, a.Role, match
			break
		}
		if !ok {
			// The same work for an unknown name, so the time does not tell which names exist.
			if !slices.ContainsFunc(accts, func(a store.Inspector) bool { return a.Name == name }) {
				CheckPassword(dummyHash, r.PostFormValue("password"))
			}
		}
	}
	if !ok {
		until := s.byAddr.fail(addr, now)
		if name != "" {
			if u := s.byName.fail(name, now); u.After(until) {
				until = u
			}
		}
		s.log.Warn("inspector login failed", "addr", addr, "name", name, "locked_until", until)
		code := http.StatusUnauthorized
		if !until.IsZero() {
			code, errKey = http.StatusTooManyRequests, "lockedOut"
		}
		s.renderLogin(w, r, code, errKey, until)
		return
	}
	s.byAddr.succeed(addr)
	s.byName.succeed(name)
	ss := s.sess.create(user, role, now)
	s.log.Info("inspector logged in", "addr", addr, "name", user)
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: ss.id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.SetCookie(w, &http.Cookie{Name: cookieLogin, Value: "", Path: "/login", MaxAge: -1})
	next := safeNext(r.PostFormValue("next"))
	if langOf(r) == label.EN && !strings.Contains(next, "lang=") {
		if strings.Contains(next, "?") {
			next += "&lang=en"
		} else {
			next += "?lang=en"
		}
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

var dummyHash, _ = HashPassword("kaoqin: no such account")

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if ss := sessionOf(r); ss != nil {
		s.sess.drop(ss.id)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/login"+langSuffix(r, "?"), http.StatusSeeOther)
}

// ---- helpers ----

// dayOf reads ?date= (YYYY-MM-DD in the zone; default today).
func (s *Server) dayOf(r *http.Request) (time.Time, error) {
	now := s.opt.Now().In(s.opt.Zone)
	d := r.URL.Query().Get("date")
	if d == "" {
		return now, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, d, s.opt.Zone)
	if err != nil {
		return now, fmt.Errorf("date %q: want YYYY-MM-DD", d)
	}
	if t.Year() < 2000 || t.Year() > 2200 {
		return now, fmt.Errorf("date %q: out of range", d)
	}
	return t.Add(12 * time.Hour), nil // the middle of the day, away from DST edges
}

func (s *Server) reportOptions() report.Options {
	return report.Options{Zone: s.opt.Zone, ClassHour: s.opt.ClassHour, Now: s.opt.Now()}
}

func startOfDay(t time.Time, zone *time.Location) time.Time {
	y, m, d := t.In(zone).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, zone)
}

// ---- today ----

type todayBody struct {
	Date      string
	Prev      string
	Next      string
	NoRoster  bool
	Sessions  []sessionView
	Present   []report.Presence
	Other     []ledger.Event
	Unsynced  bool
	SheetLink bool
}

type sessionView struct {
	report.Sheet
	Absent   []report.Attendance
	Refusals []ledger.Event
	Timeline timeline
}

func (s *Server) today(w http.ResponseWriter, r *http.Request) {
	day, err := s.dayOf(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "badParam", err.Error())
		return
	}
	ctx := r.Context()
	rs, err := s.b.ActiveRoster(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	zone := s.opt.Zone
	from := startOfDay(day, zone)
	to := from.AddDate(0, 0, 1)
	sessions := report.DaySessions(rs, day, zone)
	since, until := report.Span(sessions)
	if since.IsZero() || from.Before(since) {
		since = from
	}
	if until.IsZero() || to.After(until) {
		until = to
	}
	evs, err := s.events(ctx, ledger.Filter{Since: since, Until: until})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	opt := s.reportOptions()
	d := report.DayOf(evs, rs, day, opt)
	b := todayBody{Date: d.Date, NoRoster: rs == nil,
		Prev: from.AddDate(0, 0, -1).Format(time.DateOnly), Next: to.Format(time.DateOnly)}
	bySession := map[string][]ledger.Event{}
	var dayEvs []ledger.Event
	for _, e := range evs {
		if e.Session != "" {
			bySession[e.Session] = append(bySession[e.Session], e)
		}
		w := e.Time.Wall
		if w.Before(from) || !w.Before(to) {
			continue
		}
		dayEvs = append(dayEvs, e)
		if !e.Time.Synced {
			b.Unsynced = true
		}
		switch {
		case e.Kind == ledger.Refusal && e.Session != "":
		case e.Kind == ledger.Refusal || e.Kind == ledger.Alarm || e.Kind == ledger.Inspection || e.Kind == ledger.VoucherCheckin || e.Kind == ledger.Enrollment:
			b.Other = append(b.Other, e)
		}
	}
	b.Present = report.Present(dayEvs, rs)
	for i, sh := range d.Sessions {
		sv := sessionView{Sheet: d.Sessions[i]}
		for _, row := range sh.Rows {
			if row.In == nil && row.Status != report.StatusNotEnrolled {
				sv.Absent = append(sv.Absent, row)
			}
		}
		for _, e := range bySession[sh.Session] {
			if e.Kind == ledger.Refusal {
				sv.Refusals = append(sv.Refusals, e)
			}
		}
		var sess *roster.Session
		for _, x := range sessions {
			if x.ID == sh.Session {
				sess = x
			}
		}
		if sess != nil {
			sv.Timeline = newTimeline(sess, bySession[sh.Session], opt.Now, zone)
		}
		b.Sessions = append(b.Sessions, sv)
	}
	s.render(w, http.StatusOK, "today", s.newView(r, "today", "today", b))
}

// ---- search ----

const searchPageSize = 50

type searchBody struct {
	Q, Since, Until, Session, Kind, Flag string
	Page, Pages, Total                   int
	Events                               []ledger.Event
	Names                                map[string]string
	Kinds                                []ledger.Kind
	Flags                                []ledger.Flag
	Sessions                             []string
}

var searchKinds = []ledger.Kind{ledger.SignIn, ledger.SignOut, ledger.VoucherCheckin, ledger.Refusal, ledger.Duplicate,
	ledger.Enrollment, ledger.Alarm, ledger.Inspection, report.KindSpotCheck}

var searchFlags = []ledger.Flag{ledger.FlagLate, ledger.FlagEarlyLeave, ledger.FlagClockUnsynced, ledger.FlagClockJump,
	ledger.FlagLowMargin, ledger.FlagManualOverride, ledger.FlagTwoDevices, ledger.FlagRapidSuccession,
	ledger.FlagNotSeenByCamera, ledger.FlagAbsentSpotCheck}

// parseSearch reads and checks the search parameters; every problem is a 400 naming the field.
func (s *Server) parseSearch(r *http.Request) (searchBody, ledger.Filter, error) {
	q := r.URL.Query()
	b := searchBody{Q: strings.TrimSpace(q.Get("q")), Since: q.Get("since"), Until: q.Get("until"), Session: q.Get("session"),
		Kind: q.Get("kind"), Flag: q.Get("flag"), Page: 1, Kinds: searchKinds, Flags: searchFlags}
	var f ledger.Filter
	if utf8.RuneCountInString(b.Q) > 64 || len(b.Session) > 64 {
		return b, f, errors.New("q, session: at most 64 characters")
	}
	if b.Since != "" {
		t, err := time.ParseInLocation(time.DateOnly, b.Since, s.opt.Zone)
		if err != nil {
			return b, f, fmt.Errorf("since %q: want YYYY-MM-DD", b.Since)
		}
		f.Since = t
	}
	if b.Until != "" {
		t, err := time.ParseInLocation(time.DateOnly, b.Until, s.opt.Zone)
		if err != nil {
			return b, f, fmt.Errorf("until %q: want YYYY-MM-DD", b.Until)
		}
		f.Until = t.AddDate(0, 0, 1)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return b, f, errors.New("since is after until")
	}
	if b.Kind != "" && !slices.Contains(searchKinds, ledger.Kind(b.Kind)) {
		return b, f, fmt.Errorf("kind %q: not an event kind", b.Kind)
	}
	if b.Flag != "" && !slices.Contains(searchFlags, ledger.Flag(b.Flag)) {
		return b, f, fmt.Errorf("flag %q: not a doubt flag", b.Flag)
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1_000_000 {
			return b, f, fmt.Errorf("page %q: want a number from 1", p)
		}
		b.Page = n
	}
	f.Session, f.Kind, f.Flag = b.Session, ledger.Kind(b.Kind), ledger.Flag(b.Flag)
	return b, f, nil
}

// matchTrainees resolves a search text to trainee IDs: a trainee ID, part of a name, a masked ID
// number (or its last four characters). nil means no text (everyone).
func matchTrainees(q string, rs *roster.Roster) map[string]bool {
	if q == "" {
		return nil
	}
	m := map[string]bool{q: true} // a trainee ID, even of someone no longer in the roster
	if rs == nil {
		return m
	}
	uq := strings.ToUpper(q)
	for _, t := range rs.Trainees {
		masked := roster.MaskID(t.IDNumber)
		switch {
		case strings.Contains(t.Name, q), strings.EqualFold(t.ID, q), masked == uq,
			len(uq) == 4 && strings.HasSuffix(masked, uq):
			m[t.ID] = true
		}
	}
	return m
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	b, f, err := s.parseSearch(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "badParam", err.Error())
		return
	}
	ctx := r.Context()
	rs, err := s.b.ActiveRoster(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	who := matchTrainees(b.Q, rs)
	b.Names = map[string]string{}
	if rs != nil {
		for _, t := range rs.Trainees {
			b.Names[t.ID] = t.Name
		}
		for _, x := range rs.Sessions {
			b.Sessions = append(b.Sessions, x.ID)
		}
	}
	first := (b.Page - 1) * searchPageSize
	err = s.b.Events(ctx, f, 0, func(e *ledger.Event) error {
		if who != nil && !who[e.Trainee] {
			return nil
		}
		if b.Total >= first && b.Total < first+searchPageSize {
			b.Events = append(b.Events, e.WithoutTemplate())
		}
		b.Total++
		return nil
	})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	b.Pages = max(1, (b.Total+searchPageSize-1)/searchPageSize)
	s.render(w, http.StatusOK, "search", s.newView(r, "search", "search", b))
}

// ---- integrity ----

type integrityBody struct {
	ops.Integrity
	KeyFP          string
	Receipt        *export.Receipt
	ReceiptMatches bool
	ReceiptChecked bool
	Acked          uint64
}

func keyFingerprint(b Backend) string {
	pub, err := b.PublicKey()
	if err != nil || len(pub) == 0 {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func (s *Server) integrity(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, err := s.b.Integrity(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	b := integrityBody{Integrity: in, KeyFP: keyFingerprint(s.b)}
	if b.Receipt, err = s.b.Receipt(ctx); err != nil {
		s.serverError(w, r, err)
		return
	}
	if st, err := s.b.Status(ctx); err == nil {
		b.Acked = st.Acked
	}
	if rc := b.Receipt; rc != nil && rc.AckedSeq > 0 && rc.AckedSeq <= in.HeadSeq {
		// The hash of the record at the acknowledged seq, against the receipt's.
		h, err := s.recordHash(ctx, rc.AckedSeq)
		if err == nil {
			b.ReceiptChecked, b.ReceiptMatches = true, strings.EqualFold(h, rc.Hash)
		}
	}
	code := http.StatusOK
	s.render(w, code, "integrity", s.newView(r, "integrity", "integrity", b))
}

// recordHash is the hex SHA-256 of the record at seq: the prev of the record after it, or the
// head hash when seq is the head.
func (s *Server) recordHash(ctx context.Context, seq uint64) (string, error) {
	in, err := s.b.Integrity(ctx)
	if err != nil {
		return "", err
	}
	if seq == in.HeadSeq {
		return in.HeadHash, nil
	}
	var prev string
	errFound := errors.New("found")
	err = s.b.Events(ctx, ledger.Filter{}, seq+1, func(e *ledger.Event) error {
		prev = e.Prev
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", err
	}
	return prev, nil
}

// ---- health ----

type healthBody struct {
	Health
	Status  ops.Status
	Backlog uint64
	Sources []sourceLast
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := s.b.Status(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	h, err := s.b.Health(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	b := healthBody{Health: h, Status: st}
	if st.Head > st.Acked {
		b.Backlog = st.Head - st.Acked
	}
	// Each source's last event in the ledger over the last week.
	last := map[string]*ledger.Event{}
	evs, err := s.events(ctx, ledger.Filter{Since: s.opt.Now().AddDate(0, 0, -7)})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for i := range evs {
		if evs[i].Source != "" {
			last[evs[i].Source] = &evs[i]
		}
	}
	for name, hs := range st.Sources {
		b.Sources = append(b.Sources, sourceLast{Name: name, Health: hs, Last: last[name]})
	}
	slices.SortFunc(b.Sources, func(a, c sourceLast) int { return strings.Compare(a.Name, c.Name) })
	s.render(w, http.StatusOK, "health", s.newView(r, "health", "health", b))
}

// ---- reports ----

type reportsBody struct {
	NoRoster  bool
	Hours     []report.Hours
	Sessions  []roster.Session
	Programme string
}

// allEvents are the events a report over the whole roster needs.
func (s *Server) reportEvents(ctx context.Context, rs *roster.Roster) ([]ledger.Event, error) {
	var all []*roster.Session
	for i := range rs.Sessions {
		all = append(all, &rs.Sessions[i])
	}
	since, until := report.Span(all)
	if since.IsZero() {
		return nil, nil
	}
	return s.events(ctx, ledger.Filter{Since: since, Until: until})
}

func (s *Server) hoursOf(w http.ResponseWriter, r *http.Request) ([]report.Hours, *roster.Roster, bool) {
	ctx := r.Context()
	prog := r.URL.Query().Get("programme")
	if len(prog) > 64 {
		s.fail(w, r, http.StatusBadRequest, "badParam", "programme: at most 64 characters")
		return nil, nil, false
	}
	rs, err := s.b.ActiveRoster(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return nil, nil, false
	}
	if rs == nil {
		return nil, nil, true
	}
	if prog != "" && !slices.ContainsFunc(rs.Programmes, func(p roster.Programme) bool { return p.ID == prog }) {
		s.fail(w, r, http.StatusNotFound, "badParam", fmt.Sprintf("programme %q is not in the roster", prog))
		return nil, nil, false
	}
	evs, err := s.reportEvents(ctx, rs)
	if err != nil {
		s.serverError(w, r, err)
		return nil, nil, false
	}
	hs := report.ClassHours(evs, rs, s.reportOptions())
	if prog != "" {
		hs = slices.DeleteFunc(hs, func(h report.Hours) bool { return h.Programme != prog })
	}
	return hs, rs, true
}

func (s *Server) reports(w http.ResponseWriter, r *http.Request) {
	hs, rs, ok := s.hoursOf(w, r)
	if !ok {
		return
	}
	b := reportsBody{NoRoster: rs == nil, Hours: hs, Programme: r.URL.Query().Get("programme")}
	if rs != nil {
		b.Sessions = slices.Clone(rs.Sessions)
		slices.SortStableFunc(b.Sessions, func(a, c roster.Session) int { return c.Start.Compare(a.Start) })
	}
	s.render(w, http.StatusOK, "reports", s.newView(r, "reports", "reports", b))
}

func (s *Server) csvOptions(r *http.Request, rs *roster.Roster) export.Options {
	return export.Options{Lang: langOf(r), Zone: s.opt.Zone, Names: export.Names(rs)}
}

func attachment(w http.ResponseWriter, name, ctype string) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
}

func (s *Server) hoursCSV(w http.ResponseWriter, r *http.Request) {
	hs, rs, ok := s.hoursOf(w, r)
	if !ok {
		return
	}
	if rs == nil {
		s.fail(w, r, http.StatusNotFound, "noRoster")
		return
	}
	var buf bytes.Buffer
	if err := export.Hours(&buf, hs, s.csvOptions(r, rs)); err != nil {
		s.serverError(w, r, err)
		return
	}
	attachment(w, "hours-"+s.opt.Now().In(s.opt.Zone).Format("20060102")+".csv", "text/csv; charset=utf-8")
	w.Write(buf.Bytes())
}

type sheetBody struct {
	report.Sheet
	Date string
}

func (s *Server) sheetOf(w http.ResponseWriter, r *http.Request) (report.Sheet, *roster.Roster, bool) {
	id := r.URL.Query().Get("session")
	if id == "" || len(id) > 64 {
		s.fail(w, r, http.StatusBadRequest, "badParam", "session: required, at most 64 characters")
		return report.Sheet{}, nil, false
	}
	ctx := r.Context()
	rs, err := s.b.ActiveRoster(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return report.Sheet{}, nil, false
	}
	if rs == nil {
		s.fail(w, r, http.StatusNotFound, "noRoster")
		return report.Sheet{}, nil, false
	}
	var sess *roster.Session
	for i := range rs.Sessions {
		if rs.Sessions[i].ID == id {
			sess = &rs.Sessions[i]
		}
	}
	if sess == nil {
		s.fail(w, r, http.StatusNotFound, "badParam", fmt.Sprintf("session %q is not in the roster", id))
		return report.Sheet{}, nil, false
	}
	// The session and every session overlapping it (SheetOf takes time credited elsewhere out).
	var around []*roster.Session
	for i := range rs.Sessions {
		x := &rs.Sessions[i]
		if x.Opens().Before(sess.Closes()) && sess.Opens().Before(x.Closes()) {
			around = append(around, x)
		}
	}
	since, until := report.Span(around)
	evs, err := s.events(ctx, ledger.Filter{Since: since, Until: until})
	if err != nil {
		s.serverError(w, r, err)
		return report.Sheet{}, nil, false
	}
	sh, err := report.SheetOf(evs, rs, id, s.reportOptions())
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "badParam", err.Error())
		return report.Sheet{}, nil, false
	}
	return sh, rs, true
}

func (s *Server) sheet(w http.ResponseWriter, r *http.Request) {
	sh, _, ok := s.sheetOf(w, r)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "sheet", s.newView(r, "reports", "sheet", sheetBody{Sheet: sh, Date: sh.Start.Format(time.DateOnly)}))
}

func (s *Server) sheetCSV(w http.ResponseWriter, r *http.Request) {
	sh, rs, ok := s.sheetOf(w, r)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := export.Sheet(&buf, sh, s.csvOptions(r, rs)); err != nil {
		s.serverError(w, r, err)
		return
	}
	attachment(w, "sheet-"+safeFileName(sh.Session)+".csv", "text/csv; charset=utf-8")
	w.Write(buf.Bytes())
}

// safeFileName keeps letters, digits, dash and underscore.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// ---- visit ----

type visitBody struct {
	HeadSeq  uint64
	HeadHash string
	Recorded *ledger.Event
	Matches  bool
	Error    string
	Form     struct{ Headcount, Note, Head string }
}

func (s *Server) visitPage(w http.ResponseWriter, r *http.Request) {
	b := visitBody{}
	st, err := s.b.Status(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	b.HeadSeq = st.Head
	if seq := r.URL.Query().Get("recorded"); seq != "" {
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, "badParam", "recorded: want a seq")
			return
		}
		errFound := errors.New("found")
		err = s.b.Events(r.Context(), ledger.Filter{Kind: ledger.Inspection}, n, func(e *ledger.Event) error {
			if e.Seq == n {
				c := *e
				b.Recorded = &c
				b.Matches = strings.Contains(e.Detail, "matches")
			}
			return errFound
		})
		if err != nil && !errors.Is(err, errFound) {
			s.serverError(w, r, err)
			return
		}
	}
	s.render(w, http.StatusOK, "visit", s.newView(r, "visit", "visit", b))
}

func (s *Server) visit(w http.ResponseWriter, r *http.Request) {
	ss := sessionOf(r)
	b := visitBody{}
	b.Form.Headcount, b.Form.Note, b.Form.Head = r.PostFormValue("headcount"), r.PostFormValue("note"), strings.ToLower(strings.TrimSpace(r.PostFormValue("head")))
	bad := func(msg string) {
		b.Error = msg
		s.render(w, http.StatusBadRequest, "visit", s.newView(r, "visit", "visit", b))
	}
	n, err := strconv.Atoi(strings.TrimSpace(b.Form.Headcount))
	if err != nil || n < 0 || n > 10000 {
		bad(text(langOf(r), "headcount") + ": 0–10000")
		return
	}
	if utf8.RuneCountInString(b.Form.Note) > 500 {
		bad(text(langOf(r), "note") + ": ≤ 500")
		return
	}
	if len(b.Form.Head) > 64 || strings.Trim(b.Form.Head, "0123456789abcdef ") != "" {
		bad(text(langOf(r), "headSeen") + ": hex")
		return
	}
	head := strings.ReplaceAll(b.Form.Head, " ", "")
	in, err := s.b.Integrity(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := Visit{Inspector: ss.user, Role: ss.role, Headcount: n, Note: b.Form.Note, HeadSeq: in.HeadSeq, HeadHash: head,
		Matches: head != "" && strings.HasPrefix(in.HeadHash, head)}
	e, err := s.b.RecordInspection(r.Context(), v)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.log.Info("inspection recorded", "seq", e.Seq, "inspector", ss.user)
	http.Redirect(w, r, "/visit?recorded="+strconv.FormatUint(e.Seq, 10)+langSuffix(r, "&"), http.StatusSeeOther)
}

// VisitDetail is the Detail of an inspection event: what was seen, for people and CSV.
func VisitDetail(v Visit) string {
	d := fmt.Sprintf("headcount %d; head seq %d", v.Headcount, v.HeadSeq)
	switch {
	case v.HeadHash == "":
		d += "; head hash not written down"
	case v.Matches:
		d += "; head hash " + v.HeadHash + " matches"
	default:
		d += "; head hash " + v.HeadHash + " DIFFERS"
	}
	return d
}

// ---- bundle and evidence ----

func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f ledger.Filter
	for _, p := range []struct {
		key string
		t   *time.Time
		end bool
	}{{"since", &f.Since, false}, {"until", &f.Until, true}} {
		if v := q.Get(p.key); v != "" {
			t, err := time.ParseInLocation(time.DateOnly, v, s.opt.Zone)
			if err != nil {
				s.fail(w, r, http.StatusBadRequest, "badParam", p.key+": want YYYY-MM-DD")
				return
			}
			if p.end {
				t = t.AddDate(0, 0, 1)
			}
			*p.t = t
		}
	}
	st, err := s.b.Status(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	name := fmt.Sprintf("kaoqin-%s-%s.zip", safeFileName(st.Device), s.opt.Now().In(s.opt.Zone).Format("20060102-150405"))
	// The bundle is made in a file first (the backend streams it after), so a failure before
	// the first byte is still an error page.
	pw := &lazyWriter{w: w, start: func() { attachment(w, name, "application/zip") }}
	if _, err := s.b.ExportBundle(r.Context(), pw, f, langOf(r)); err != nil {
		if !pw.started {
			s.serverError(w, r, err)
			return
		}
		s.log.Error("bundle download cut", "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("bundle downloaded", "inspector", sessionOf(r).user)
}

// lazyWriter sets the headers on the first write.
type lazyWriter struct {
	w       io.Writer
	start   func()
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.start()
	}
	return l.w.Write(p)
}

// evidence serves a photo an event names: /evidence/{seq}/{sha}. The photo must be named by that
// event, and its content must still hash to its name.
func (s *Server) evidence(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	sha := r.PathValue("sha")
	if err != nil || seq == 0 || len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		s.fail(w, r, http.StatusBadRequest, "badParam", "want /evidence/SEQ/SHA256")
		return
	}
	var ev *ledger.Event
	errFound := errors.New("found")
	err = s.b.Events(r.Context(), ledger.Filter{}, seq, func(e *ledger.Event) error {
		if e.Seq == seq {
			c := *e
			ev = &c
		}
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		s.serverError(w, r, err)
		return
	}
	if ev == nil || !slices.ContainsFunc(ev.Evidence, func(p ledger.Photo) bool { return p.SHA256 == sha }) {
		s.fail(w, r, http.StatusNotFound, "notFound")
		return
	}
	f, err := s.b.Evidence(sha)
	if errors.Is(err, fs.ErrNotExist) {
		s.fail(w, r, http.StatusNotFound, "notFound", "the photo is no longer on the box")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	defer f.Close()
	jpeg, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if sum := sha256.Sum256(jpeg); hex.EncodeToString(sum[:]) != sha {
		s.fail(w, r, http.StatusConflict, "notFound", "the photo on the box no longer matches its name")
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(jpeg)
}
