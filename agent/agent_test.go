package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/zfm"
	zfmemu "github.com/kaoqin/kaoqin/drivers/zfm/emu"
)

// The module's library follows the roster: a template nobody lists is erased, the roster's
// templates are stored, and a trainee dropped by a newer roster loses their page while the others
// keep theirs.
func TestTemplatesFollowTheRoster(t *testing.T) {
	t.Parallel()
	stranger := "X999/right-thumb"
	h := start(t, options{module: zfmemu.Config{Preload: []string{stranger}}})
	if got := h.library(); !slices.Equal(got, []string{stranger}) {
		t.Fatalf("library before any roster: got %v, want [%s] untouched", got, stranger)
	}

	h.importRoster(demoRoster(4)) // waits for exactly T001..T004
	pages := map[string]int{}
	for i := 1; i <= 4; i++ {
		pages[demo.TraineeID(i)] = h.pageOf(demo.Finger(demo.TraineeID(i)))
	}

	r2 := demo.Roster(time.Now(), 4, 2)
	r2.Trainees = slices.DeleteFunc(r2.Trainees, func(tr roster.Trainee) bool { return tr.ID == "T002" })
	r2.Vouchers = slices.DeleteFunc(r2.Vouchers, func(v roster.Voucher) bool { return v.Code == demo.VoucherCode(2) })
	h.importRoster(r2) // waits for exactly T001, T003, T004
	for _, id := range []string{"T001", "T003", "T004"} {
		if got := h.pageOf(demo.Finger(id)); got != pages[id] {
			t.Errorf("page of %s after roster 2: got %d, want %d kept", id, got, pages[id])
		}
	}
	if lib := h.module.Library(); lib[pages["T002"]] != nil {
		t.Errorf("page %d of the dropped trainee T002: got a template, want it deleted", pages["T002"])
	}
	if s := h.status(); s.RosterVersion != 2 || s.Trainees != 3 {
		t.Errorf("status: got roster %d with %d trainees, want 2 with 3", s.RosterVersion, s.Trainees)
	}

	// The module no longer knows T002's finger; T001's still maps to T001.
	if ev := h.touch(demo.Finger("T002")); ev.Kind != ledger.Refusal || ev.Reason != ledger.ReasonUnidentified || ev.Trainee != "" {
		t.Errorf("touch of the dropped trainee: got %s, want refusal/unidentified without a trainee", kinds([]ledger.Event{ev}))
	}
	if ev := h.touch(demo.Finger("T001")); ev.Kind != ledger.SignIn || ev.Trainee != "T001" {
		t.Errorf("touch of T001 after roster 2: got %s, want sign_in/T001", kinds([]ledger.Event{ev}))
	}
}

// Finger touches at the reader: an enrolled trainee signs in, a second touch within the
// suppression window is a duplicate referring to the sign-in, an unknown finger is refused. Every
// event carries the masked ID number, and no record holds a full one.
func TestFingerTouches(t *testing.T) {
	t.Parallel()
	r := demoRoster(4)
	h := start(t, options{roster: r})
	session := r.Sessions[0].ID

	in := h.touch(demo.Finger("T001"))
	if in.Kind != ledger.SignIn || in.Trainee != "T001" || in.Session != session || in.Source != finger ||
		in.Method != string(drivers.Fingerprint) || in.Institution != demo.Institution {
		t.Errorf("first touch of T001: got %s session %q source %q method %q institution %q; want sign_in/T001 in %s from %s by fingerprint at %s",
			kinds([]ledger.Event{in}), in.Session, in.Source, in.Method, in.Institution, session, finger, demo.Institution)
	}
	full := demo.IDNumber(1)
	if want := roster.MaskID(full); in.IDMasked != want || in.IDMasked == full {
		t.Errorf("ID number on the sign-in: got %q, want %q (masked)", in.IDMasked, want)
	}
	if in.Score < 50 || !strings.HasPrefix(in.Detail, "page ") {
		t.Errorf("sign-in score %v detail %q: want a score of at least 50 and the page", in.Score, in.Detail)
	}

	dup := h.touch(demo.Finger("T001"))
	if dup.Kind != ledger.Duplicate || dup.Trainee != "T001" || dup.Ref != in.ID {
		t.Errorf("second touch of T001 within the suppression window: got %s ref %q, want duplicate/T001 ref %q",
			kinds([]ledger.Event{dup}), dup.Ref, in.ID)
	}

	unknown := h.touch("X999/left-thumb")
	if unknown.Kind != ledger.Refusal || unknown.Reason != ledger.ReasonUnidentified || unknown.Trainee != "" || unknown.Source != finger {
		t.Errorf("touch of an unenrolled finger: got %s source %q, want refusal/unidentified from %s",
			kinds([]ledger.Event{unknown}), unknown.Source, finger)
	}
	if got := h.readings(finger); got != 3 {
		t.Errorf("readings of %s: got %d, want 3 (one per touch)", finger, got)
	}

	if err := h.stop(); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	evs, bodies := h.ledgerFile()
	if got := count(evs, ledger.SignIn, ""); got != 1 {
		t.Errorf("sign-ins in the ledger file: got %d, want 1; ledger %s", got, kinds(evs))
	}
	noFullIDNumbers(t, bodies, r)
}

// secondVoucher is held by T006 of voucherRoster, not yet checked in.
const secondVoucher = "SD2026-REG002"

// voucherRoster is the demo roster of 5 trainees (T005 holds the registration voucher) and a
// sixth, T006, who holds a second voucher not yet checked in.
func voucherRoster() *roster.Roster {
	r := demo.Roster(time.Now(), 5, 1)
	reg := r.Vouchers[len(r.Vouchers)-1]
	id := demo.TraineeID(6)
	r.Trainees = append(r.Trainees, roster.Trainee{ID: id, Name: "学员06", IDNumber: demo.IDNumber(6),
		Fingerprints: []roster.Fingerprint{{Finger: "right-index", Template: zfmemu.Template(demo.Finger(id))}}})
	v := reg
	v.Code, v.Holder = secondVoucher, demo.IDNumber(6)
	r.Vouchers = append(r.Vouchers, v)
	return r
}

// scanPending scans a voucher that is valid here and waits until the daemon has the reading; it
// records nothing while the voucher waits for its holder.
func (h *harness) scanPending(code string) {
	h.t.Helper()
	seq, before := h.head(), h.readings(qr)
	h.scan(code)
	if !testkit.WaitFor(h.t, func() bool { return h.readings(qr) > before }, 10*time.Second) {
		h.t.Fatalf("scan of %s: got no reading from %s, want one", code, qr)
	}
	if evs := eventsAfter(h.events(), seq); len(evs) != 0 {
		h.t.Fatalf("scan of %s: got %s recorded, want nothing until its holder follows", code, kinds(evs))
	}
}

// Voucher check-in end to end: a QR scan of the voucher, then its holder's finger at the same
// station; the voucher is then bound; another person's finger is refused; a scan nobody follows
// times out.
func TestVoucherCheckin(t *testing.T) {
	t.Parallel()
	r := voucherRoster()
	// A capture takes 100 ms once a finger is down, as on a module: a finger placed after a scan
	// cannot overtake the scan on its way to the decision loop.
	h := start(t, options{voucherWindow: "2s", roster: r,
		module: zfmemu.Config{Latency: zfmemu.Latency{Capture: 100 * time.Millisecond}}})

	h.scanPending(demo.RegistrationVoucher)
	ev := h.touch(demo.Finger("T005"))
	if ev.Kind != ledger.VoucherCheckin || ev.Trainee != "T005" || ev.Voucher != demo.RegistrationVoucher ||
		ev.Institution != demo.Institution || ev.Source != finger || ev.IDMasked != roster.MaskID(demo.IDNumber(5)) {
		t.Fatalf("voucher scan then the holder's finger: got %s voucher %q institution %q source %q id %q; want voucher_checkin/T005 of %s at %s from %s, ID masked",
			kinds([]ledger.Event{ev}), ev.Voucher, ev.Institution, ev.Source, ev.IDMasked, demo.RegistrationVoucher, demo.Institution, finger)
	}

	seq := h.head()
	h.scan(demo.RegistrationVoucher)
	evs := h.after(seq, "second scan of the checked-in voucher")
	if len(evs) != 1 || evs[0].Kind != ledger.Refusal || evs[0].Reason != ledger.ReasonVoucherBound ||
		evs[0].Voucher != demo.RegistrationVoucher || evs[0].Source != qr {
		t.Fatalf("second scan of %s: got %s, want one refusal/voucher_already_bound from %s", demo.RegistrationVoucher, kinds(evs), qr)
	}

	h.scanPending(secondVoucher)
	ev = h.touch(demo.Finger("T001"))
	if ev.Kind != ledger.Refusal || ev.Reason != ledger.ReasonNotHolder || ev.Trainee != "T001" || ev.Voucher != secondVoucher {
		t.Fatalf("scan of T006's voucher then T001's finger: got %s voucher %q, want refusal/not_voucher_holder/T001 of %s",
			kinds([]ledger.Event{ev}), ev.Voucher, secondVoucher)
	}
	// The refusal ended the scan: the holder's finger now is no check-in (T006 has no class yet).
	if ev := h.touch(demo.Finger("T006")); ev.Kind == ledger.VoucherCheckin {
		t.Fatalf("T006's finger after the refused attempt: got %s, want no check-in without a new scan", kinds([]ledger.Event{ev}))
	}

	seq = h.head()
	scanned := time.Now()
	h.scanPending(secondVoucher)
	evs = h.after(seq, "scan nobody follows")
	waited := time.Since(scanned)
	if len(evs) != 1 || evs[0].Kind != ledger.Refusal || evs[0].Reason != ledger.ReasonVoucherTimeout ||
		evs[0].Voucher != secondVoucher || evs[0].Source != qr {
		t.Fatalf("scan of %s with no finger following: got %s, want one refusal/voucher_checkin_timeout from %s", secondVoucher, kinds(evs), qr)
	}
	if waited < 2*time.Second {
		t.Errorf("voucher timeout: recorded %v after the scan, want at least the 2s window", waited)
	}

	// The timed-out voucher is still unbound: its holder can check in with a new scan.
	h.scanPending(secondVoucher)
	if ev := h.touch(demo.Finger("T006")); ev.Kind != ledger.VoucherCheckin || ev.Trainee != "T006" || ev.Voucher != secondVoucher {
		t.Fatalf("new scan of %s then T006's finger: got %s voucher %q, want voucher_checkin/T006", secondVoucher, kinds([]ledger.Event{ev}), ev.Voucher)
	}

	if err := h.stop(); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	all, bodies := h.ledgerFile()
	if got := count(all, ledger.VoucherCheckin, ""); got != 2 {
		t.Errorf("voucher check-ins in the ledger: got %d, want 2; ledger %s", got, kinds(all))
	}
	noFullIDNumbers(t, bodies, r)
}

// A manual sign-in through the socket is recorded and flagged as an override; one without an
// operator or a reason is refused, and does not count.
func TestManualSignIn(t *testing.T) {
	t.Parallel()
	h := start(t, options{roster: demoRoster(4)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	out, err := h.client.SignIn(ctx, api.SignInRequest{Trainee: "T002", Operator: "王老师", Secret: demo.TeacherSecret, Reason: "finger too dry"})
	e := out.Event
	if err != nil || e.Kind != ledger.SignIn || e.Trainee != "T002" || !e.HasFlag(ledger.FlagManualOverride) ||
		e.Source != agent.ManualSource || e.Operator != "王老师" || e.Note != "finger too dry" || e.Seq == 0 {
		t.Fatalf("manual sign-in: got %s flags %v source %q operator %q note %q seq %d, %v; want a recorded sign_in/T002 flagged manual_override from %q by 王老师, the reason as note",
			kinds([]ledger.Event{e}), e.Flags, e.Source, e.Operator, e.Note, e.Seq, err, agent.ManualSource)
	}
	if e.IDMasked != roster.MaskID(demo.IDNumber(2)) {
		t.Errorf("manual sign-in ID number: got %q, want %q", e.IDMasked, roster.MaskID(demo.IDNumber(2)))
	}
	var flagged []ledger.Event
	err = h.client.Events(ctx, ledger.Filter{Flag: ledger.FlagManualOverride}, 0, func(x *ledger.Event) error {
		flagged = append(flagged, *x)
		return nil
	})
	if err != nil || len(flagged) != 1 || flagged[0].ID != e.ID {
		t.Errorf("ledger events flagged manual_override: got %s, %v; want the one sign-in %s", kinds(flagged), err, e.ID)
	}

	// Without an operator: denied before the rules, and recorded.
	if _, err := h.client.SignIn(ctx, api.SignInRequest{Trainee: "T003", Reason: "no operator named"}); err == nil || !strings.Contains(err.Error(), "no_operator") {
		t.Errorf("manual sign-in without an operator: got %v, want denied no_operator", err)
	}
	req := api.SignInRequest{Trainee: "T003", Operator: "王老师", Secret: demo.TeacherSecret}
	out, err = h.client.SignIn(ctx, req)
	if e := out.Event; err != nil || e.Kind != ledger.Refusal || e.Reason != ledger.ReasonOverrideIncomplete || e.Seq == 0 {
		t.Errorf("manual sign-in %+v: got %s seq %d, %v; want a recorded refusal/override_incomplete", req, kinds([]ledger.Event{e}), e.Seq, err)
	}
	out, err = h.client.SignIn(ctx, api.SignInRequest{Trainee: "T003", Operator: "王老师", Secret: demo.TeacherSecret, Reason: "late bus"})
	if err != nil || out.Event.Kind != ledger.SignIn || out.Event.Trainee != "T003" {
		t.Errorf("complete override of T003 after two refused ones: got %s, %v; want sign_in/T003 (refusals do not count)",
			kinds([]ledger.Event{out.Event}), err)
	}
}

// A module that hangs up is reopened after the backoff and readings flow again; so is a module
// unplugged and replaced on the same link, whose empty library the daemon fills again.
func TestSourceReopensAfterHangUp(t *testing.T) {
	t.Parallel()
	r := demoRoster(4)
	h := start(t, options{roster: r})
	if ev := h.touch(demo.Finger("T001")); ev.Kind != ledger.SignIn {
		t.Fatalf("touch before the fault: got %s, want sign_in", kinds([]ledger.Event{ev}))
	}

	reopened := func(n uint64) bool {
		s := h.status().Sources[finger]
		return s.Reopens >= n && s.State == drivers.StateOK
	}
	faulted := time.Now()
	h.module.Inject(zfmemu.Fault{Kind: zfmemu.FaultHangUp})
	if !testkit.WaitFor(t, func() bool { return reopened(1) }, 10*time.Second) {
		t.Fatalf("after a hang-up: got health %+v, want ok with at least 1 reopen", h.status().Sources[finger])
	}
	if took := time.Since(faulted); took < 500*time.Millisecond {
		t.Errorf("reopened %v after the hang-up, want the backoff (1s with jitter, at least 500ms)", took)
	}
	if ev := h.touch(demo.Finger("T002")); ev.Kind != ledger.SignIn || ev.Trainee != "T002" || ev.Source != finger {
		t.Fatalf("touch after the reopen: got %s from %q, want sign_in/T002 from %s", kinds([]ledger.Event{ev}), ev.Source, finger)
	}

	// Unplugged; another module, with an empty library, on the same link.
	if err := h.module.Close(); err != nil {
		t.Fatal(err)
	}
	h.module = zfmemu.New(zfmemu.Config{OnPacket: h.onPacket})
	if err := h.module.Start(string(h.cfg.Sources[0].Driver.(*zfm.SourceConfig).Path)); err != nil {
		t.Fatal(err)
	}
	if !testkit.WaitFor(t, func() bool { return reopened(2) }, 10*time.Second) {
		t.Fatalf("after the module was replaced: got health %+v, want ok with at least 2 reopens", h.status().Sources[finger])
	}
	want := templatesOf(r)
	if !testkit.WaitFor(t, func() bool { return slices.Equal(h.library(), want) }, 10*time.Second) {
		t.Fatalf("library of the new module: got %v, want %v", h.library(), want)
	}
	if ev := h.touch(demo.Finger("T003")); ev.Kind != ledger.SignIn || ev.Trainee != "T003" {
		t.Fatalf("touch at the new module: got %s, want sign_in/T003", kinds([]ledger.Event{ev}))
	}
}

// Cancelled while readings are queued, Run records every reading the devices produced before it
// returns nil: a burst of scans still in flight, a finger on the sensor. The ledger file then
// verifies.
func TestShutdownLosesNothing(t *testing.T) {
	t.Parallel()
	r := demoRoster(4)
	h := start(t, options{roster: r})
	base := h.head()

	const n = 300
	var burst []byte
	for i := 1; i <= n; i++ {
		burst = fmt.Appendf(burst, "SD2026-Q%05d\r\n", i) // vouchers nobody issued: one refusal each
	}
	h.module.Place(demo.Finger("T001"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.qr.Write(ctx, burst); err != nil {
		t.Fatal(err)
	}
	if !testkit.WaitFor(t, func() bool { return h.readings(finger) >= 1 && h.head() > base }, 10*time.Second) {
		t.Fatalf("before the cancel: got %d readings from %s and head %d, want the touch read and the burst being recorded",
			h.readings(finger), finger, h.head())
	}
	recorded := h.head() - base
	if err := h.stop(); err != nil {
		t.Fatalf("Run after cancel: got %v, want nil", err)
	}
	t.Logf("%d of %d events recorded when the daemon was cancelled", recorded, n+1)
	if _, err := api.Dial(h.cfg.Socket); !errors.Is(err, api.ErrNoDaemon) {
		t.Errorf("dial after Run returned: got %v, want ErrNoDaemon", err)
	}

	evs, bodies := h.ledgerFile()
	seen := map[string]int{}
	for _, e := range evs {
		if e.Kind == ledger.Refusal && e.Reason == ledger.ReasonUnknownVoucher && e.Source == qr {
			seen[e.Voucher]++
		}
	}
	var missing []string
	for i := 1; i <= n; i++ {
		code := fmt.Sprintf("SD2026-Q%05d", i)
		if seen[code] != 1 {
			missing = append(missing, fmt.Sprintf("%s×%d", code, seen[code]))
		}
	}
	if len(missing) > 0 {
		t.Errorf("scans in the ledger: %d of %d codes not recorded exactly once: %v", len(missing), n, missing[:min(len(missing), 10)])
	}
	if got := count(evs, ledger.SignIn, ""); got != 1 {
		t.Errorf("the touch in progress at the cancel: got %d sign-ins, want 1", got)
	}
	noFullIDNumbers(t, bodies, r)
}

// With the disk under the reserve, readings are refused loudly: no capture is recorded, one
// disk_full alarm says why, the operator's manual sign-in fails with the reason, and the daemon
// keeps running.
func TestDiskReserveRefusesCaptures(t *testing.T) {
	t.Parallel()
	h := start(t, options{roster: demoRoster(4), extra: "\n[store]\nmin_free_mib = 100000000 # ~95 TiB, more than any disk here\n"})
	base := h.head()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	h.module.Place(demo.Finger("T001"))
	evs := h.after(base, "touch with the disk full")
	h.lift()
	if len(evs) != 1 || evs[0].Kind != ledger.Alarm || evs[0].Reason != ledger.AlarmDiskFull {
		t.Fatalf("touch with the disk full: got %s, want one alarm/disk_full", kinds(evs))
	}

	_, err := h.client.SignIn(ctx, api.SignInRequest{Trainee: "T002", Operator: "王老师", Secret: demo.TeacherSecret, Reason: "test"})
	if !errors.Is(err, api.ErrDaemon) || !strings.Contains(err.Error(), "disk reserve") {
		t.Errorf("manual sign-in with the disk full: got %v, want the daemon's disk reserve error", err)
	}
	before := h.readings(finger)
	h.module.Place(demo.Finger("T003"))
	if !testkit.WaitFor(t, func() bool { return h.readings(finger) > before }, 10*time.Second) {
		t.Fatalf("second touch: got no reading, want one")
	}
	h.lift()
	// Through the same loop as the touch, after it: once it is refused, the touch was decided.
	if _, err := h.client.SignIn(ctx, api.SignInRequest{Trainee: "T004", Operator: "王老师", Secret: demo.TeacherSecret, Reason: "test"}); err == nil {
		t.Errorf("second manual sign-in with the disk full: got nil error, want refused")
	}

	evs = eventsAfter(h.events(), base)
	if len(evs) != 1 || evs[0].Kind != ledger.Alarm || evs[0].Reason != ledger.AlarmDiskFull {
		t.Errorf("ledger after two touches and two manual sign-ins on a full disk: got %s, want only one alarm/disk_full", kinds(evs))
	}
	select {
	case err := <-h.done:
		h.stopped, h.runErr = true, err
		t.Fatalf("Run returned %v on a full disk, want it running", err)
	default:
	}
	if s := h.status(); s.Sources[finger].State != drivers.StateOK {
		t.Errorf("reader on a full disk: got %s, want ok", s.Sources[finger].State)
	}
}
