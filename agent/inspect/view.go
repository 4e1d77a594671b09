package inspect

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/report"
)

// view is what every page's template gets: the language, the inspector, the navigation, and the
// page's own data in Body. Its methods are the templates' helpers.
type view struct {
	Lang   label.Lang
	Title  string
	Nav    string
	User   string
	Role   string
	CSRF   string
	Device string
	Path   string // this page's path and query without lang, for the language switch
	Body   any
	zone   *time.Location
}

// T is the UI text of key in the page's language.
func (v view) T(key string) string { return text(v.Lang, key) }

// U is a link to p with the query pairs kv, keeping the page's language.
func (v view) U(p string, kv ...any) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if val := fmt.Sprint(kv[i+1]); val != "" {
			q.Set(fmt.Sprint(kv[i]), val)
		}
	}
	if v.Lang == label.EN {
		q.Set("lang", "en")
	}
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

// Other is this page in the other language.
func (v view) Other() string {
	u, _ := url.Parse(v.Path)
	if u == nil {
		u = &url.URL{Path: "/"}
	}
	q := u.Query()
	q.Del("lang")
	if v.Lang != label.EN {
		q.Set("lang", "en")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// IsEN reports an English page.
func (v view) IsEN() bool { return v.Lang == label.EN }

func (v view) Kind(k ledger.Kind) string     { return label.Kind(k).Coded(v.Lang) }
func (v view) Reason(r ledger.Reason) string { return label.Reason(r).Coded(v.Lang) }
func (v view) Flag(f ledger.Flag) string     { return label.Flag(f).Coded(v.Lang) }
func (v view) Method(m string) string {
	if m == "" {
		return ""
	}
	return label.Method(m).In(v.Lang)
}
func (v view) Status(s report.Status) string { return label.Status(string(s)).Coded(v.Lang) }

// Clock is a time of day in the zone, with seconds.
func (v view) Clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(v.zone).Format("15:04:05")
}

// HM is a time of day in the zone, to the minute; the date too when it is not the day of ref.
func (v view) HM(t, ref time.Time) string {
	t = t.In(v.zone)
	if y, m, d := t.Date(); ref.IsZero() || !sameDay(t, ref.In(v.zone)) {
		return fmt.Sprintf("%04d-%02d-%02d %s", y, m, d, t.Format("15:04"))
	}
	return t.Format("15:04")
}

// When is a date and time in the zone.
func (v view) When(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(v.zone).Format("2006-01-02 15:04:05")
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

// Pct is a ratio as a percentage.
func (v view) Pct(r float64) string { return fmt.Sprintf("%.1f%%", r*100) }

// Bytes is a size in MiB or GiB.
func (v view) Bytes(n any) string {
	var f float64
	switch x := n.(type) {
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case int:
		f = float64(x)
	}
	if f >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", f/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", f/(1<<20))
}

// Short is the first 12 characters of a hash.
func (v view) Short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Groups writes a hash in groups of four, to be read aloud and written down.
func (v view) Groups(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// Score is a matching score, or nothing.
func (v view) Score(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprintf("%.3g", f)
}

var templates = parseTemplates()

func parseTemplates() map[string]*template.Template {
	funcs := template.FuncMap{"add": func(a, b int) int { return a + b }}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html"))
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := path.Base(n)
		if name == "layout.html" {
			continue
		}
		out[strings.TrimSuffix(name, ".html")] = template.Must(template.Must(base.Clone()).ParseFS(assets, n))
	}
	return out
}

// langOf reads ?lang=; anything unreadable is Chinese (the default), never an error page.
func langOf(r *http.Request) label.Lang {
	l, err := label.ParseLang(r.URL.Query().Get("lang"))
	if err != nil {
		return label.ZH
	}
	return l
}

func langSuffix(r *http.Request, sep string) string {
	if langOf(r) == label.EN {
		return sep + "lang=en"
	}
	return ""
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// newView starts a page's view for request r.
func (s *Server) newView(r *http.Request, nav, title string, body any) view {
	v := view{Lang: langOf(r), Nav: nav, Body: body, zone: s.opt.Zone}
	v.Title = text(v.Lang, title)
	if ss := sessionOf(r); ss != nil {
		v.User, v.Role, v.CSRF = ss.user, ss.role, ss.csrf
		if st, err := s.b.Status(r.Context()); err == nil {
			v.Device = st.Device
		}
	}
	v.Path = r.URL.RequestURI()
	return v
}

// render writes a page; a template error is logged and answered with a plain 500.
func (s *Server) render(w http.ResponseWriter, code int, page string, v view) {
	var buf bytes.Buffer
	t := templates[page]
	if t == nil {
		http.Error(w, "inspect: no page "+page, http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.log.Error("inspector page", "page", page, "err", err)
		http.Error(w, "inspect: page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// problem is the body of the error page.
type problem struct {
	Code    int
	Message string
	Detail  string
}

// fail answers with an error page in the request's language: a status and a message key.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, key string, detail ...string) {
	v := s.newView(r, "", "error", problem{Code: code, Message: text(langOf(r), key), Detail: strings.Join(detail, " ")})
	s.render(w, code, "error", v)
}

// serverError logs err and answers 500 without its detail (which may name files).
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("inspector page failed", "path", r.URL.Path, "err", err)
	s.fail(w, r, http.StatusInternalServerError, "internal")
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := assets.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(b)
}

// Rows are a session's rows on the today page (rowsHTML).
func (v view) Rows(rows []report.Attendance) template.HTML { return rowsHTML(v, rows) }

// Join lists names with commas (one escaped string, not a template loop over hundreds).
func (v view) Join(names []string) string { return strings.Join(names, ", ") }

// Events are a list of events on the today page (eventsHTML).
func (v view) Events(evs []ledger.Event) template.HTML { return eventsHTML(v, evs) }
