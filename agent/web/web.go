// Package web is the agent's local API and inspector view: an http.Handler serving JSON (and a
// page of today's log) from the running daemon. On the unix socket (admin) it also takes the
// writes the CLI makes: manual sign-ins, roster imports, certificate serials, enrolment. On a TCP
// port it is read-only. The socket's file permissions are its authentication.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/drivers"
)

// Outcome is what became of a reading submitted to the decision loop.
type Outcome struct {
	Event   ledger.Event `json:"event"`
	Pending bool         `json:"pending,omitempty"` // a voucher scan waiting for its holder
	Note    string       `json:"note,omitempty"`
	Err     error        `json:"-"`
}

// Status is the daemon's state for `kaoqin status` and the inspector.
type Status struct {
	Device        string                    `json:"device"`
	Institution   string                    `json:"institution"`
	Version       string                    `json:"version"`
	Epoch         uint64                    `json:"epoch"`
	Head          uint64                    `json:"head"`
	Acked         uint64                    `json:"acked"`
	RosterVersion uint64                    `json:"roster_version"`
	Trainees      int                       `json:"trainees"`
	Sources       map[string]drivers.Health `json:"sources"`
	Started       time.Time                 `json:"started"`
}

// RosterSummary is the active roster as shown to operators: ID numbers masked.
type RosterSummary struct {
	Version      uint64               `json:"version"`
	SHA256       string               `json:"sha256"`
	Applied      time.Time            `json:"applied"`
	From         string               `json:"from"`
	Institutions []roster.Institution `json:"institutions"`
	Programmes   []roster.Programme   `json:"programmes"`
	Sessions     []roster.Session     `json:"sessions"`
	Trainees     []TraineeSummary     `json:"trainees"`
	Vouchers     int                  `json:"vouchers"`
}

// TraineeSummary is a trainee without sensitive data.
type TraineeSummary struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	IDMasked     string   `json:"id_masked"`
	Classes      []string `json:"classes"`
	Fingerprints int      `json:"fingerprints"`
}

// Summarize masks a roster for display.
func Summarize(r *roster.Roster) RosterSummary {
	s := RosterSummary{Version: r.Version, Institutions: r.Institutions, Programmes: r.Programmes, Sessions: r.Sessions, Vouchers: len(r.Vouchers)}
	for _, t := range r.Trainees {
		ts := TraineeSummary{ID: t.ID, Name: t.Name, IDMasked: roster.MaskID(t.IDNumber), Fingerprints: len(t.Fingerprints)}
		for _, e := range t.Enrolments {
			ts.Classes = append(ts.Classes, e.Class)
		}
		s.Trainees = append(s.Trainees, ts)
	}
	return s
}

// SignInRequest is a manual sign-in (the override path).
type SignInRequest struct {
	Trainee  string         `json:"trainee"`
	Operator string         `json:"operator"`
	Reason   string         `json:"reason"`
	Intent   drivers.Intent `json:"intent,omitempty"`
}

// CertRequest asks for the next certificate serial.
type CertRequest struct {
	Institution string `json:"institution"`
	Category    string `json:"category"`
	Year        int    `json:"year"`
}

// EnrollRequest enrols a trainee's finger at a fingerprint reader.
type EnrollRequest struct {
	Source  string `json:"source"`
	Trainee string `json:"trainee"`
	Finger  string `json:"finger"`
}

// Backend is what the handler needs from the daemon.
type Backend interface {
	Status() Status
	// Submit puts a reading through the decision loop and waits for it to be recorded.
	Submit(ctx context.Context, rd drivers.Reading) (Outcome, error)
	// Events calls fn for each event matching f from seq from on, in order.
	Events(f ledger.Filter, from uint64, fn func(*ledger.Event) error) error
	Roster() (RosterSummary, error)
	ImportRoster(raw []byte) (RosterSummary, error)
	NextCert(req CertRequest) (cert.Serial, error)
	// Enroll captures a finger twice at a reader and records the template as an event.
	Enroll(ctx context.Context, req EnrollRequest, progress func(string)) (ledger.Event, error)
	// Snapshot writes a consistent copy of the ledger file.
	Snapshot(w io.Writer) (int64, error)
}

// Handler serves the API. Writes are served only when admin is set (the unix socket).
func Handler(b Backend, admin bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, b.Status()) })
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) { events(b, w, r) })
	mux.HandleFunc("GET /v1/roster", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Roster()
		if err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { page(b, w, r) })
	if !admin {
		return mux
	}
	mux.HandleFunc("POST /v1/signin", func(w http.ResponseWriter, r *http.Request) {
		var req SignInRequest
		if !readJSON(w, r, &req) {
			return
		}
		out, err := b.Submit(r.Context(), drivers.Reading{Source: "manual", Method: drivers.Manual, Subject: req.Trainee,
			Operator: req.Operator, Reason: req.Reason, Intent: req.Intent, At: time.Now()})
		if err != nil {
			writeErr(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/roster", func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		s, err := b.ImportRoster(raw)
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /v1/cert/next", func(w http.ResponseWriter, r *http.Request) {
		var req CertRequest
		if !readJSON(w, r, &req) {
			return
		}
		sn, err := b.NextCert(req)
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"serial": sn.String()})
	})
	// The whole file, roster with full ID numbers included: for the socket only.
	mux.HandleFunc("GET /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := b.Snapshot(w); err != nil {
			// Headers are gone; a cut stream fails the client's length check.
			panic(http.ErrAbortHandler)
		}
	})
	mux.HandleFunc("POST /v1/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req EnrollRequest
		if !readJSON(w, r, &req) {
			return
		}
		// Progress lines stream as they happen; the last line is the result.
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		flush := func() {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		e, err := b.Enroll(r.Context(), req, func(msg string) {
			enc.Encode(EnrollLine{Progress: msg})
			flush()
		})
		if err != nil {
			enc.Encode(EnrollLine{Error: err.Error()})
			return
		}
		enc.Encode(EnrollLine{Event: &e})
	})
	return mux
}

// EnrollLine is one line of the enrolment stream.
type EnrollLine struct {
	Progress string        `json:"progress,omitempty"`
	Error    string        `json:"error,omitempty"`
	Event    *ledger.Event `json:"event,omitempty"`
}

// ParseFilter reads event filters from query parameters (the CLI's flag names).
func ParseFilter(q map[string][]string) (ledger.Filter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := ledger.Filter{Session: get("session"), Trainee: get("trainee"), Kind: ledger.Kind(get("kind")), Flag: ledger.Flag(get("flag"))}
	var err error
	if f.Since, err = parseTime(get("since")); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseTime(get("until")); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	return f, nil
}

// parseTime accepts RFC 3339, a date (local midnight), or "today".
func parseTime(s string) (time.Time, error) {
	switch s {
	case "":
		return time.Time{}, nil
	case "today":
		y, m, d := time.Now().Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.Local), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339, YYYY-MM-DD, YYYY-MM-DDTHH:MM or today", s)
}

func events(b Backend, w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	from, _ := strconv.ParseUint(r.URL.Query().Get("from_seq"), 10, 64)
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	err = b.Events(f, from, func(e *ledger.Event) error {
		e.Data = nil // templates stay on the box's ledger; the log does not need them
		return enc.Encode(e)
	})
	if err != nil {
		enc.Encode(map[string]string{"error": err.Error()})
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// ErrDaemon is an error the daemon reported.
var ErrDaemon = errors.New("daemon")
