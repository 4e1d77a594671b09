package web

import (
	"embed"
	"html/template"
	"net/http"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

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
	err := b.Events(f, 0, func(e *ledger.Event) error {
		evs = append(evs, *e)
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	logPage.Execute(w, struct {
		Status Status
		Date   string
		Filter ledger.Filter
		Events []ledger.Event
	}{b.Status(), f.Since.Format(time.DateOnly), f, evs})
}
