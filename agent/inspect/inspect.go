// Package inspect serves the inspector's view of the box over HTTP: the day's log, who is in the
// room now per session, and the box's state. It reads only, through the ledger service
// (agent/ops); the daemon mounts it beside the read-only JSON of agent/api.
package inspect

import (
	"context"
	"embed"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
)

// Backend is what the pages read.
type Backend interface {
	Status(ctx context.Context) (ops.Status, error)
	Events(ctx context.Context, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error
	Roster(ctx context.Context) (ops.RosterSummary, error)
}

// Handler serves the pages.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { page(b, w, r) })
	return mux
}

//go:embed templates/log.html
var templates embed.FS

var logPage = template.Must(template.ParseFS(templates, "templates/log.html"))

// page serves the inspector's view of one day of the log (today by default).
func page(b Backend, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	day := time.Now()
	if d := q.Get("date"); d != "" {
		t, err := time.ParseInLocation(time.DateOnly, d, time.Local)
		if err != nil {
			http.Error(w, "date: want YYYY-MM-DD", http.StatusBadRequest)
			return
		}
		day = t
	}
	y, m, d := day.Date()
	f := ledger.Filter{Since: time.Date(y, m, d, 0, 0, 0, 0, time.Local), Trainee: q.Get("trainee"), Session: q.Get("session")}
	f.Until = f.Since.AddDate(0, 0, 1)
	var evs []ledger.Event
	err := b.Events(r.Context(), f, 0, func(e *ledger.Event) error {
		evs = append(evs, *e)
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	names := map[string]string{}
	if r, err := b.Roster(r.Context()); err == nil {
		for _, t := range r.Trainees {
			names[t.ID] = t.Name
		}
	}
	st, err := b.Status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	logPage.Execute(w, struct {
		Status  ops.Status
		Date    string
		Filter  ledger.Filter
		Events  []ledger.Event
		Names   map[string]string
		Present []presence
	}{st, f.Since.Format(time.DateOnly), f, evs, names, present(evs, names)})
}

// presence is who is in the room for a session, by the day's events: signed in, not signed out.
type presence struct {
	Session  string
	In       []string // "T001 张三"
	SignedIn int      // signed in at all today
}

func present(evs []ledger.Event, names map[string]string) []presence {
	type state struct{ in, out bool }
	bySession := map[string]map[string]*state{}
	var order []string
	for _, e := range evs {
		if e.Session == "" || (e.Kind != ledger.SignIn && e.Kind != ledger.SignOut) {
			continue
		}
		m := bySession[e.Session]
		if m == nil {
			m = map[string]*state{}
			bySession[e.Session] = m
			order = append(order, e.Session)
		}
		st := m[e.Trainee]
		if st == nil {
			st = &state{}
			m[e.Trainee] = st
		}
		if e.Kind == ledger.SignIn {
			st.in = true
		} else {
			st.out = true
		}
	}
	var out []presence
	for _, s := range order {
		p := presence{Session: s}
		for t, st := range bySession[s] {
			if st.in {
				p.SignedIn++
			}
			if st.in && !st.out {
				p.In = append(p.In, strings.TrimSpace(t+" "+names[t]))
			}
		}
		slices.Sort(p.In)
		out = append(out, p)
	}
	return out
}
