// Package api is the agent's local JSON API and its client: the CLI's way into the running daemon.
// On the unix socket (admin) it takes the writes the CLI makes: manual sign-ins, roster imports,
// certificate serials, enrolment, snapshots. Beside the inspector's pages on a TCP port it is
// read-only. The socket's file permissions let a caller in; each privileged write also names an
// operator of the roster and their secret (agent/ops: Authenticate), and is recorded with them.
package api

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
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/drivers"
)

// SignInRequest is a manual sign-in (the override path).
type SignInRequest struct {
	Trainee  string         `json:"trainee"`
	Operator string         `json:"operator"`
	Secret   string         `json:"secret,omitempty"`
	Reason   string         `json:"reason"`
	Intent   drivers.Intent `json:"intent,omitempty"`
	// ConfirmOperator and ConfirmSecret are the second operator, needed above the session's
	// limit of manual sign-ins.
	ConfirmOperator string `json:"confirm_operator,omitempty"`
	ConfirmSecret   string `json:"confirm_secret,omitempty"`
}

// EnrollRequest enrols a trainee's finger at a fingerprint reader.
type EnrollRequest struct {
	Source  string `json:"source"`
	Trainee string `json:"trainee"`
	Finger  string `json:"finger"`
	// Operator and Secret are the registration operator who enrols.
	Operator string `json:"operator,omitempty"`
	Secret   string `json:"secret,omitempty"`
	// IDNumber is the trainee's resident ID number as the operator read it from the ID card and
	// typed it: it must be the roster's.
	IDNumber string `json:"id_number,omitempty"`
}

// Backend is what the handler needs from the daemon: the ledger service (agent/ops) and the
// decision loop.
type Backend interface {
	Status(ctx context.Context) (ops.Status, error)
	// Submit puts a reading through the decision loop and waits for it to be recorded.
	Submit(ctx context.Context, rd drivers.Reading) (checkin.Outcome, error)
	// Events calls fn for each event matching f from seq from on, in order.
	Events(ctx context.Context, f ledger.Filter, from uint64, fn func(*ledger.Event) error) error
	Roster(ctx context.Context) (ops.RosterSummary, error)
	// ImportDataset applies a signed dataset bundle from a file (ops.Service.ImportDataset).
	ImportDataset(ctx context.Context, req ops.ImportRequest) (ops.ImportResult, error)
	NextCert(ctx context.Context, req ops.CertRequest) (cert.Serial, error)
	// AuthorizeOverride checks a manual sign-in's operators (ops.Service.AuthorizeOverride).
	AuthorizeOverride(ctx context.Context, req ops.OverrideRequest) (confirmer string, err error)
	// Enroll captures a template at a reader and records it as an event.
	Enroll(ctx context.Context, req EnrollRequest, progress func(string)) (ledger.Event, error)
	// Snapshot writes a consistent copy of the ledger file.
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
	// SpotCheck asks every room camera for a spot check now and returns how many were asked;
	// the spot_check events follow in the ledger once the cameras' bursts are decided.
	SpotCheck(ctx context.Context) (int, error)
}

// SpotCheckReply is the answer to POST /v1/spotcheck: how many room cameras were asked.
type SpotCheckReply struct {
	Cameras int `json:"cameras"`
}

// InspectorCode is a one-time login code for the inspector's pages.
type InspectorCode struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
	Listen  string    `json:"listen"` // where the pages are served
}

// CodeIssuer is a backend that serves the inspector's pages: it makes one-time login codes
// (POST /v1/inspector/code, on the socket only).
type CodeIssuer interface {
	InspectorCode(ctx context.Context) (InspectorCode, error)
}

// Handler serves the API. Writes are served only when admin is set (the unix socket).
func Handler(b Backend, admin bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Status(r.Context())
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) { events(b, w, r) })
	mux.HandleFunc("GET /v1/roster", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Roster(r.Context())
		if err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	if !admin {
		return mux
	}
	mux.HandleFunc("POST /v1/signin", func(w http.ResponseWriter, r *http.Request) {
		var req SignInRequest
		if !readJSON(w, r, &req) {
			return
		}
		confirmer, err := b.AuthorizeOverride(r.Context(), ops.OverrideRequest{Credentials: ops.Credentials{Operator: req.Operator, Secret: req.Secret},
			Confirm: ops.Credentials{Operator: req.ConfirmOperator, Secret: req.ConfirmSecret}, Trainee: req.Trainee})
		if err != nil {
			writeErr(w, errStatus(err), err)
			return
		}
		rd := drivers.Reading{Source: ManualSource, Method: drivers.Manual, Subject: req.Trainee,
			Operator: req.Operator, Reason: req.Reason, Intent: req.Intent, At: time.Now()}
		if confirmer != "" {
			rd.Detail = "confirmed by " + confirmer
			rd.Flags = append(rd.Flags, string(ledger.FlagSecondOperator))
		}
		out, err := b.Submit(r.Context(), rd)
		if err != nil {
			writeErr(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/spotcheck", func(w http.ResponseWriter, r *http.Request) {
		n, err := b.SpotCheck(r.Context())
		if err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusOK, SpotCheckReply{Cameras: n})
	})
	mux.HandleFunc("POST /v1/roster", func(w http.ResponseWriter, r *http.Request) {
		var req ops.ImportRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 512<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
			return
		}
		s, err := b.ImportDataset(r.Context(), req)
		if err != nil {
			writeErr(w, errStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /v1/cert/next", func(w http.ResponseWriter, r *http.Request) {
		var req ops.CertRequest
		if !readJSON(w, r, &req) {
			return
		}
		sn, err := b.NextCert(r.Context(), req)
		if err != nil {
			writeErr(w, errStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"serial": sn.String()})
	})
	// The whole file, roster with full ID numbers included: for the socket only.
	mux.HandleFunc("GET /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := b.Snapshot(r.Context(), w); err != nil {
			// Headers are gone; a cut stream fails the client's length check.
			panic(http.ErrAbortHandler)
		}
	})
	if ci, ok := b.(CodeIssuer); ok {
		mux.HandleFunc("POST /v1/inspector/code", func(w http.ResponseWriter, r *http.Request) {
			c, err := ci.InspectorCode(r.Context())
			if err != nil {
				writeErr(w, http.StatusConflict, err)
				return
			}
			writeJSON(w, http.StatusOK, c)
		})
	}
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
	var from uint64
	if v := r.URL.Query().Get("from_seq"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("from_seq: %q is not a number", v))
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	err = b.Events(r.Context(), f, from, func(e *ledger.Event) error {
		c := e.WithoutTemplate()
		return enc.Encode(&c)
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

// errStatus is 403 for an action denied to its operator, 422 for any other refusal.
func errStatus(err error) int {
	if errors.Is(err, ops.ErrDenied) {
		return http.StatusForbidden
	}
	return http.StatusUnprocessableEntity
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// ErrDaemon is an error the daemon reported.
var ErrDaemon = errors.New("daemon")

// ManualSource is the source name of sign-ins entered through the API (the override path).
const ManualSource = "manual"
