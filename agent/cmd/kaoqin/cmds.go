package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/web"
	"github.com/kaoqin/kaoqin/drivers"
)

func loadConfig(path string) (*agent.Config, error) {
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		var ce *agent.ConfigError
		var ces agent.ConfigErrors
		if errors.As(err, &ce) || errors.As(err, &ces) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "run --config FILE", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	check := fs.Bool("check", false, "only load and validate the config, then exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
		return nil
	}
	log := newLogger(stderr, cfg.Level())
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// ledgerView is what the read commands need: the daemon's API, or the file when it is stopped.
type ledgerView struct {
	client *web.Client
	st     *store.Store
}

func (v *ledgerView) Close() {
	if v.st != nil {
		v.st.Close()
	}
}

func (v *ledgerView) events(ctx context.Context, f ledger.Filter, fn func(*ledger.Event) error) error {
	if v.client != nil {
		return v.client.Events(ctx, f, fn)
	}
	return agent.Events(v.st, f, 0, fn)
}

// openView connects to the running daemon of the config, or opens the file read-only when the
// daemon is stopped; --db names a file directly (an inspector's copy).
func openView(cfgPath, db string) (*ledgerView, error) {
	if db != "" {
		st, err := store.OpenReadOnly(db)
		if err != nil {
			return nil, err
		}
		return &ledgerView{st: st}, nil
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	c, err := web.Dial(cfg.Socket)
	if err == nil {
		return &ledgerView{client: c}, nil
	}
	if !errors.Is(err, web.ErrNoDaemon) {
		return nil, err
	}
	st, err := store.OpenReadOnly(cfg.DBPath())
	if err != nil {
		return nil, err
	}
	return &ledgerView{st: st}, nil
}

func dialDaemon(cfgPath string) (*web.Client, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	c, err := web.Dial(cfg.Socket)
	if errors.Is(err, web.ErrNoDaemon) {
		return nil, fmt.Errorf("%w (start it: systemctl start kaoqin, or kaoqin run --config %s)", err, cfgPath)
	}
	return c, err
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "status [--config FILE] [--json]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, s)
	}
	fmt.Fprintf(stdout, "device %s (institution %s), kaoqin %s, up since %s\n", s.Device, s.Institution, s.Version, s.Started.Format(time.DateTime))
	fmt.Fprintf(stdout, "ledger epoch %d: %d events, %d acknowledged centrally, backlog %d\n", s.Epoch, s.Head, s.Acked, s.Head-s.Acked)
	fmt.Fprintf(stdout, "roster version %d, %d trainees\n", s.RosterVersion, s.Trainees)
	names := make([]string, 0, len(s.Sources))
	for n := range s.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := s.Sources[n]
		fmt.Fprintf(stdout, "source %-14s %-9s readings %d, dropped %d, reopens %d %s\n", n, h.State, h.Readings, h.Dropped, h.Reopens, h.LastErr)
	}
	return nil
}

func cmdSignin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("signin", "signin --trainee ID --operator NAME --reason TEXT [--out]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	trainee := fs.String("trainee", "", "trainee ID (required)")
	operator := fs.String("operator", "", "who makes the override (required)")
	reason := fs.String("reason", "", "why the trainee could not sign in at a device (required)")
	out := fs.Bool("out", false, "record a sign-out rather than a sign-in")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trainee == "" || *operator == "" || *reason == "" {
		return usagef("signin: --trainee, --operator and --reason are all required (a manual sign-in is an override)")
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	req := web.SignInRequest{Trainee: *trainee, Operator: *operator, Reason: *reason}
	if *out {
		req.Intent = drivers.SignOut
	}
	o, err := c.SignIn(ctx, req)
	if err != nil {
		return err
	}
	e := o.Event
	if e.Kind == ledger.Refusal {
		return fmt.Errorf("refused (%s) and recorded as seq %d: %s", e.Reason, e.Seq, e.Note)
	}
	fmt.Fprintf(stdout, "recorded seq %d: %s %s %s session %s, flags %v\n", e.Seq, e.Kind, e.Trainee, e.IDMasked, e.Session, e.Flags)
	return nil
}

// filterFlags adds the event filters shared by log and export.
func filterFlags(fs *flag.FlagSet) func() (ledger.Filter, error) {
	since := fs.String("since", "", "from this time (RFC 3339, YYYY-MM-DD, YYYY-MM-DDTHH:MM or today)")
	until := fs.String("until", "", "before this time")
	session := fs.String("session", "", "only this session")
	trainee := fs.String("trainee", "", "only this trainee")
	kind := fs.String("kind", "", "only this kind: sign_in, sign_out, voucher_checkin, refusal, duplicate, enrollment, alarm")
	flg := fs.String("flag", "", "only events with this doubt flag (late, early_leave, manual_override, ...)")
	return func() (ledger.Filter, error) {
		f, err := web.ParseFilter(map[string][]string{"since": {*since}, "until": {*until}, "session": {*session},
			"trainee": {*trainee}, "kind": {*kind}, "flag": {*flg}})
		if err != nil {
			return f, usageError{err}
		}
		return f, nil
	}
}

func cmdLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("log", "log [--since T] [--until T] [--session S] [--trainee ID] [--kind K] [--flag F] [--json]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file (finds the daemon's socket or the ledger)")
	db := fs.String("db", "", "read this ledger file instead (daemon stopped, or a copy)")
	asJSON := fs.Bool("json", false, "one JSON object a line")
	filter := filterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	f, err := filter()
	if err != nil {
		return err
	}
	v, err := openView(*cfgPath, *db)
	if err != nil {
		return err
	}
	defer v.Close()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return v.events(ctx, f, func(e *ledger.Event) error {
			e.Data = nil
			return enc.Encode(e)
		})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tTRAINEE\tID NUMBER\tSESSION\tSOURCE\tREASON/NOTE\tFLAGS")
	n := 0
	err = v.events(ctx, f, func(e *ledger.Event) error {
		n++
		when := e.Time.Wall.Format("2006-01-02 15:04:05")
		if !e.Time.Synced {
			when += "*"
		}
		note := e.Note
		if e.Reason != "" {
			note = strings.TrimSpace(string(e.Reason) + " " + note)
		}
		if e.Operator != "" {
			note += " (operator " + e.Operator + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, when, e.Kind, e.Trainee, e.IDMasked, e.Session, e.Source, note, joinFlags(e.Flags))
		return nil
	})
	tw.Flush()
	if err == nil {
		fmt.Fprintf(stdout, "%d events (* = clock not synchronised)\n", n)
	}
	return err
}

func joinFlags(fl []ledger.Flag) string {
	s := make([]string, len(fl))
	for i, f := range fl {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "verify --pubkey FILE [--db FILE | --config FILE] [--all-signatures]", stderr)
	db := fs.String("db", "", "ledger file (a copy, or the daemon's while it is stopped); default: the config's ledger, snapshotted through the daemon when it runs")
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file, when --db is not given")
	pubPath := fs.String("pubkey", "", "the device's public key, PEM (required: verification trusts nothing in the file)")
	all := fs.Bool("all-signatures", false, "also check every event's own signature (about 30 µs an event on two cores)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *pubPath == "" {
		return usagef("verify: --pubkey is required")
	}
	if *db == "" {
		tmp, err := os.CreateTemp("", "kaoqin-verify-*.db")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		from, err := snapshot(ctx, *cfgPath, tmp.Name())
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "verifying a snapshot of %s\n", from)
		*db = tmp.Name()
	}
	pub, err := ledger.LoadPublicKey(*pubPath)
	if err != nil {
		return usageError{err}
	}
	st, err := store.OpenReadOnly(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	p := newProgress(stderr, "verifying")
	sum, err := st.Verify(pub, store.VerifyOptions{AllSignatures: *all, Progress: p.update})
	p.done()
	if err != nil {
		var prob *ledger.Problem
		if errors.As(err, &prob) {
			return fmt.Errorf("NOT INTACT: first bad event is seq %d: %v (events before it verified)", prob.Seq, prob.Err)
		}
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "intact: device %s epoch %d, %d events, head %x, verified in %v (%.0f events/s)\n",
		sum.Device, sum.Epoch, sum.Events, sum.Head[:8], el.Round(time.Millisecond), float64(sum.Events)/el.Seconds())
	return nil
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", "export --format csv|json --out FILE [filters]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	db := fs.String("db", "", "read this ledger file instead")
	format := fs.String("format", "csv", "csv or json (JSON lines)")
	out := fs.String("out", "", "output file (required; - for standard output)")
	filter := filterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "csv" && *format != "json" {
		return usagef("export: --format %q: want csv or json", *format)
	}
	if *out == "" {
		return usagef("export: --out is required")
	}
	f, err := filter()
	if err != nil {
		return err
	}
	v, err := openView(*cfgPath, *db)
	if err != nil {
		return err
	}
	defer v.Close()
	w := stdout
	var file *os.File
	if *out != "-" {
		if file, err = os.Create(*out); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	p := newProgress(stderr, "exporting")
	n := uint64(0)
	write, flush := exporter(w, *format)
	err = v.events(ctx, f, func(e *ledger.Event) error {
		n++
		if n%1000 == 0 {
			p.update(n, 0)
		}
		return write(e)
	})
	p.done()
	if err == nil {
		err = flush()
	}
	if err == nil && file != nil {
		err = file.Sync()
	}
	if err != nil {
		return err
	}
	if file != nil {
		fmt.Fprintf(stdout, "%d events written to %s\n", n, *out)
	}
	return nil
}

var csvHeader = []string{"seq", "id", "time", "clock_synced", "kind", "trainee", "id_masked", "session", "institution",
	"voucher", "source", "method", "score", "reason", "flags", "operator", "note", "evidence", "device", "epoch"}

// evidenceNames lists an event's photos as their SHA-256 names, space-separated.
func evidenceNames(ps []ledger.Photo) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.SHA256
	}
	return strings.Join(names, " ")
}

func exporter(w io.Writer, format string) (write func(*ledger.Event) error, flush func() error) {
	if format == "json" {
		enc := json.NewEncoder(w)
		return func(e *ledger.Event) error { e.Data = nil; return enc.Encode(e) }, func() error { return nil }
	}
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	return func(e *ledger.Event) error {
			return cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.ID, e.Time.Wall.Format(time.RFC3339),
				strconv.FormatBool(e.Time.Synced), string(e.Kind), e.Trainee, e.IDMasked, e.Session, e.Institution,
				e.Voucher, e.Source, e.Method, strconv.FormatFloat(e.Score, 'g', -1, 64), string(e.Reason),
				joinFlags(e.Flags), e.Operator, e.Note, evidenceNames(e.Evidence), e.Device, strconv.FormatUint(e.Epoch, 10)})
		}, func() error {
			cw.Flush()
			return cw.Error()
		}
}

func cmdRoster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "roster", []string{"import", "show"},
		"Usage: kaoqin roster import FILE [--config FILE]\n       kaoqin roster show [--config FILE] [--json]", stdout)
	if err != nil {
		return err
	}
	fs := newFlags("roster "+sub, "roster "+sub+" [flags]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	asJSON := fs.Bool("json", false, "print JSON (show)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	c, derr := web.Dial(cfg.Socket)
	if derr != nil && !errors.Is(derr, web.ErrNoDaemon) {
		return derr
	}
	var sum web.RosterSummary
	switch sub {
	case "import":
		if fs.NArg() != 1 {
			return usagef("roster import: want one roster file")
		}
		raw, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		if c != nil {
			sum, err = c.ImportRoster(ctx, raw)
		} else {
			err = withStore(cfg, func(st *store.Store) error {
				if _, err := agent.ImportRoster(st, raw); err != nil {
					return err
				}
				sum, err = agent.RosterSummary(st)
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("roster refused; the active roster stays: %w", err)
		}
		fmt.Fprintf(stdout, "roster version %d active: %d institutions, %d programmes, %d sessions, %d trainees, %d vouchers\n",
			sum.Version, len(sum.Institutions), len(sum.Programmes), len(sum.Sessions), len(sum.Trainees), sum.Vouchers)
		return nil
	default:
		if c != nil {
			sum, err = c.Roster(ctx)
		} else {
			var st *store.Store
			if st, err = store.OpenReadOnly(cfg.DBPath()); err == nil {
				sum, err = agent.RosterSummary(st)
				st.Close()
			}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, sum)
		}
		printRoster(stdout, sum)
		return nil
	}
}

func printRoster(w io.Writer, s web.RosterSummary) {
	fmt.Fprintf(w, "roster version %d (%s, applied %s from %s)\n\n", s.Version, s.SHA256[:min(12, len(s.SHA256))], s.Applied.Format(time.DateTime), s.From)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTITUTION\tCITY\tCOUNTY\tNAME\tVOUCHERS\tRETIRED")
	for _, in := range s.Institutions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\n", in.Code, in.City, in.County, in.Name, in.AcceptsVouchers, in.Retired)
	}
	fmt.Fprintln(tw, "\nSESSION\tCLASS\tPROGRAMME\tSTART\tEND\tDEVICES")
	for _, se := range s.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", se.ID, se.Class, se.Programme, se.Start.Format("2006-01-02 15:04"), se.End.Format("15:04"), strings.Join(se.Devices, ","))
	}
	fmt.Fprintln(tw, "\nTRAINEE\tNAME\tID NUMBER\tCLASSES\tFINGERPRINTS")
	for _, t := range s.Trainees {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", t.ID, t.Name, t.IDMasked, strings.Join(t.Classes, ","), t.Fingerprints)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d vouchers\n", s.Vouchers)
}

// withStore opens the ledger for writing while the daemon is stopped.
func withStore(cfg *agent.Config, fn func(*store.Store) error) error {
	key, err := ledger.LoadPrivateKey(cfg.Key)
	if err != nil {
		return err
	}
	sc := cfg.LedgerConfig()
	sc.Key = key
	st, err := store.Open(sc, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func cmdCert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "cert", []string{"decode", "validate", "next"},
		"Usage: kaoqin cert decode SERIAL\n       kaoqin cert validate SERIAL\n       kaoqin cert next --institution CODE --category A|B|C [--year YYYY] [--config FILE]", stdout)
	if err != nil {
		return err
	}
	switch sub {
	case "decode", "validate":
		if len(args) != 2 {
			return usagef("cert %s: want one serial", args[0])
		}
		sn, err := cert.Parse(args[1])
		if err != nil {
			return err
		}
		if args[0] == "validate" {
			fmt.Fprintf(stdout, "%s: valid\n", sn)
			return nil
		}
		fmt.Fprintf(stdout, "serial      %s\ncity        %s %s\ncounty      %s (%s level)\ninstitution %s\nyear        %d\nsequence    %05d\ncategory    %s\n",
			sn, sn.City, cert.Cities[sn.City], sn.County, sn.Level(), sn.Institution, sn.Year, sn.Seq, sn.Category)
		return nil
	default:
		fs := newFlags("cert next", "cert next --institution CODE --category A|B|C [--year YYYY]", stderr)
		cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
		inst := fs.String("institution", "", "4-digit institution code (required)")
		cat := fs.String("category", "", "A employment skills, B on-the-job upgrading, C entrepreneurship (required)")
		year := fs.Int("year", 0, "year of issue (default this year)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *inst == "" || *cat == "" {
			return usagef("cert next: --institution and --category are required")
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		req := web.CertRequest{Institution: *inst, Category: *cat, Year: *year}
		var serial string
		c, derr := web.Dial(cfg.Socket)
		switch {
		case derr == nil:
			serial, err = c.NextCert(ctx, req)
		case errors.Is(derr, web.ErrNoDaemon):
			err = withStore(cfg, func(st *store.Store) error {
				sn, err := agent.NextCert(st, req)
				serial = sn.String()
				return err
			})
		default:
			err = derr
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, serial)
		return nil
	}
}

func cmdEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if _, err := pickSub(args, "enroll", []string{"finger"},
		"Usage: kaoqin enroll finger --trainee ID [--finger right-index] [--source NAME] [--config FILE]", stdout); err != nil {
		return err
	}
	fs := newFlags("enroll finger", "enroll finger --trainee ID [--finger NAME] [--source NAME]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	trainee := fs.String("trainee", "", "trainee ID (required)")
	finger := fs.String("finger", "right-index", "which finger")
	source := fs.String("source", "", "fingerprint reader (default: the first one)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *trainee == "" {
		return usagef("enroll finger: --trainee is required")
	}
	c, err := dialDaemon(*cfgPath)
	if err != nil {
		return err
	}
	e, err := c.Enroll(ctx, web.EnrollRequest{Source: *source, Trainee: *trainee, Finger: *finger}, func(msg string) {
		fmt.Fprintln(stdout, msg)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled %s (%s), template of %d bytes recorded as seq %d for the central system\n", e.Trainee, e.Detail, len(e.Data), e.Seq)
	return nil
}

func cmdKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", "keygen --out DIR [--name device|central]", stderr)
	out := fs.String("out", "", "directory for NAME.key (private, 0600) and NAME.pub (required)")
	name := fs.String("name", "device", "key name: device for a box, central for the central system's dataset key")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("keygen: --out is required")
	}
	priv, pub, err := ledger.GenerateKeyFiles(*out, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key %s\npublic key  %s (give it to inspectors and the central system)\n", priv, pub)
	return nil
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlags("version", "version", stderr), args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "kaoqin", agent.Version)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress draws a progress line on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	label string
	on    bool
	last  time.Time
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) update(done, total uint64) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if total > 0 {
		const width = 30
		fill := int(width * done / total)
		fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %3d%%", p.label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, 100*done/total)
	} else {
		fmt.Fprintf(p.w, "\r%s %d events", p.label, done)
	}
}

func (p *progress) done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func cmdSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("snapshot", "snapshot --out FILE [--config FILE]", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file")
	out := fs.String("out", "", "where to write the copy of the ledger file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("snapshot: --out is required")
	}
	from, err := snapshot(ctx, *cfgPath, *out)
	if err != nil {
		return err
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: a consistent copy of %s (%d bytes); it holds full ID numbers: keep it safe\n", *out, from, fi.Size())
	return nil
}

// snapshot writes a consistent copy of the config's ledger to path (through the running daemon,
// or from the file when it is stopped): a temporary file, fsynced, then renamed into place. It
// returns what it copied, for the user.
func snapshot(ctx context.Context, cfgPath, path string) (string, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	from := "the running daemon's ledger"
	c, err := web.Dial(cfg.Socket)
	switch {
	case err == nil:
		_, err = c.Snapshot(ctx, tmp)
	case errors.Is(err, web.ErrNoDaemon):
		from = cfg.DBPath()
		var st *store.Store
		if st, err = store.OpenReadOnly(cfg.DBPath()); err == nil {
			_, err = st.Snapshot(tmp)
			st.Close()
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return from, err
}
