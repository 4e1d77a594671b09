package agent_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// centralKey makes the central system's key pair of a test in dir (central.key, central.pub).
// centralKey makes the central system's key pair in dir, or loads it (a daemon restarted on the
// same folder).
func centralKey(t testing.TB, dir string) ed25519.PrivateKey {
	t.Helper()
	priv := filepath.Join(dir, "central.key")
	if _, err := os.Stat(priv); err != nil {
		if priv, _, err = ledger.GenerateKeyFiles(dir, "central"); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ledger.LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// signedRoster is r as the bundle `kaoqin ingest publish --out` makes for device.
func signedRoster(t testing.TB, key ed25519.PrivateKey, device string, r *roster.Roster) []byte {
	t.Helper()
	content := rosterJSON(t, r)
	now := time.Now()
	m, _, err := wire.Split("roster", r.Version, device, content, wire.MaxChunkSize, now)
	if err != nil {
		t.Fatal(err)
	}
	m.Expires = now.Add(time.Hour)
	b, err := wire.SealBundle(m, content, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var admin = ops.Credentials{Operator: demo.Admin, Secret: demo.AdminSecret}

func lastEvent(t *testing.T, c *api.Client) ledger.Event {
	t.Helper()
	evs := allEvents(t, c)
	return evs[len(evs)-1]
}

// Each attack on the roster import, scripted: every one is refused with its reason, recorded as
// an event, and the active roster stays.
func TestDatasetImportAttacks(t *testing.T) {
	h := start(t, options{roster: demo.Roster(time.Now(), 4, 1)})
	ctx := context.Background()
	good := demo.Roster(time.Now(), 4, 2)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	empty := &roster.Roster{Version: 9999999999}
	emptied := demo.Roster(time.Now(), 4, 3)
	emptied.Trainees, emptied.Vouchers = nil, nil
	for _, tc := range []struct {
		name   string
		req    ops.ImportRequest
		reason ledger.Reason
	}{
		{"unsigned", ops.ImportRequest{Credentials: admin, Bundle: rosterJSON(t, good)}, ledger.DatasetUnsigned},
		{"forged", ops.ImportRequest{Credentials: admin, Bundle: signedRoster(t, otherKey, "test-r101", good)}, ledger.DatasetBadSignature},
		{"another box's", ops.ImportRequest{Credentials: admin, Bundle: signedRoster(t, h.central, "test-r102", good)}, ledger.DatasetWrongDevice},
		{"replayed", ops.ImportRequest{Credentials: admin, Bundle: signedRoster(t, h.central, "test-r101", demo.Roster(time.Now(), 4, 1))}, ledger.DatasetReplayed},
		{"empty, signed", ops.ImportRequest{Credentials: admin, Bundle: signedRoster(t, h.central, "test-r101", empty)}, ledger.DatasetEmptiesRoom},
		{"running session emptied, signed", ops.ImportRequest{Credentials: admin, Bundle: signedRoster(t, h.central, "test-r101", emptied)}, ledger.DatasetEmptiesRoom},
	} {
		_, err := h.client.ImportDataset(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), string(tc.reason)) {
			t.Errorf("%s: got %v, want a refusal naming %s", tc.name, err, tc.reason)
			continue
		}
		e := lastEvent(t, h.client)
		if e.Kind != ledger.Dataset || e.Reason != tc.reason || e.Dataset == nil || e.Dataset.Applied || e.Dataset.Origin != "file" {
			t.Errorf("%s: last event %s/%s %+v, want a refused dataset event from a file with reason %s", tc.name, e.Kind, e.Reason, e.Dataset, tc.reason)
		}
		if s := h.status(); s.RosterVersion != 1 || s.Trainees != 4 {
			t.Errorf("%s: roster version %d with %d trainees, want version 1 with 4 kept", tc.name, s.RosterVersion, s.Trainees)
		}
	}
	// The module's templates were never touched by a refused roster.
	if got, want := h.library(), templatesOf(demo.Roster(time.Now(), 4, 1)); !slices.Equal(got, want) {
		t.Errorf("module library after the refused rosters: got %v, want %v", got, want)
	}
	// A teacher may not import; a wrong PIN may not either.
	for _, c := range []ops.Credentials{{Operator: demo.Teacher, Secret: demo.TeacherSecret}, {Operator: demo.Admin, Secret: "000000"}, {}} {
		_, err := h.client.ImportDataset(ctx, ops.ImportRequest{Credentials: c, Bundle: signedRoster(t, h.central, "test-r101", good)})
		if e := lastEvent(t, h.client); err == nil || e.Kind != ledger.Denied || e.Operator != c.Operator {
			t.Errorf("import by %q: got %v, last event %s %s; want denied and recorded", c.Operator, err, e.Kind, e.Reason)
		}
	}
	// The real thing, by the administrator.
	res, err := h.client.ImportDataset(ctx, ops.ImportRequest{Credentials: admin, Bundle: signedRoster(t, h.central, "test-r101", good)})
	if err != nil || res.Version != 2 {
		t.Fatalf("signed import: got %+v %v, want version 2 applied", res, err)
	}
	e := lastEvent(t, h.client)
	if e.Kind != ledger.Dataset || !e.Dataset.Applied || e.Operator != demo.Admin || e.Dataset.SHA256 == "" || e.Dataset.Version != 2 {
		t.Fatalf("applied import: last event %+v %+v, want an applied dataset event naming the administrator", e, e.Dataset)
	}
}

// Manual sign-ins: an operator is required and authenticated, their role must be teaching, and
// above the limit a second operator confirms.
func TestOverridesNeedAccountableOperators(t *testing.T) {
	h := start(t, options{roster: demo.Roster(time.Now(), 4, 1), extra: "[trust]\nmax_overrides = 1\n"})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		req    api.SignInRequest
		reason ledger.Reason
	}{
		{"no operator", api.SignInRequest{Trainee: "T001", Reason: "dry finger"}, ledger.DeniedNoOperator},
		{"wrong PIN", api.SignInRequest{Trainee: "T001", Operator: demo.Teacher, Secret: "111111", Reason: "dry finger"}, ledger.DeniedBadSecret},
		{"role lacking the right", api.SignInRequest{Trainee: "T001", Operator: demo.Registrar, Secret: demo.RegistrarSecret, Reason: "dry finger"}, ledger.DeniedRole},
	} {
		_, err := h.client.SignIn(ctx, tc.req)
		e := lastEvent(t, h.client)
		if err == nil || !strings.Contains(err.Error(), string(tc.reason)) || e.Kind != ledger.Denied || e.Reason != tc.reason {
			t.Errorf("%s: got %v, last event %s/%s; want denied %s and recorded", tc.name, err, e.Kind, e.Reason, tc.reason)
		}
	}
	teacher := api.SignInRequest{Trainee: "T001", Operator: demo.Teacher, Secret: demo.TeacherSecret, Reason: "dry finger"}
	out, err := h.client.SignIn(ctx, teacher)
	if err != nil || out.Event.Kind != ledger.SignIn || out.Event.Operator != demo.Teacher || !out.Event.HasFlag(ledger.FlagManualOverride) {
		t.Fatalf("first override: got %+v %v, want a flagged sign-in naming the teacher", out.Event, err)
	}
	// The session has its one override: the next needs a second operator.
	teacher.Trainee = "T002"
	if _, err := h.client.SignIn(ctx, teacher); err == nil || !strings.Contains(err.Error(), string(ledger.DeniedNeedsSecond)) {
		t.Fatalf("second override alone: got %v, want second_operator_needed", err)
	}
	teacher.ConfirmOperator, teacher.ConfirmSecret = demo.SecondTeacher, demo.SecondTeacherSecret
	out, err = h.client.SignIn(ctx, teacher)
	if err != nil || out.Event.Kind != ledger.SignIn || !out.Event.HasFlag(ledger.FlagSecondOperator) || !strings.Contains(out.Event.Detail, demo.SecondTeacher) {
		t.Fatalf("confirmed override: got %+v %v, want a sign-in flagged second_operator naming %s", out.Event, err, demo.SecondTeacher)
	}
}

// Certificate serials need an administrator and blocks from the central system.
func TestCertNeedsAdministratorAndBlocks(t *testing.T) {
	h := start(t, options{roster: demo.Roster(time.Now(), 4, 1)})
	ctx := context.Background()
	req := ops.CertRequest{Credentials: ops.Credentials{Operator: demo.Teacher, Secret: demo.TeacherSecret},
		Institution: demo.Institution, Category: "A", Trainee: "T001", Programme: "P-ELEC"}
	if _, err := h.client.NextCert(ctx, req); err == nil || !strings.Contains(err.Error(), string(ledger.DeniedRole)) {
		t.Fatalf("cert by a teacher: got %v, want role_lacks_right", err)
	}
	req.Credentials = admin
	if _, err := h.client.NextCert(ctx, req); err == nil || !strings.Contains(err.Error(), string(ledger.DeniedOutsideBlock)) {
		t.Fatalf("cert without blocks: got %v, want outside_serial_block", err)
	}
	blocks := []byte(`{"version":1,"device":"test-r101","issued":"2026-01-01T00:00:00Z","blocks":[{"city":"3701","county":"02","institution":"0001","year":` +
		time.Now().Format("2006") + `,"category":"A","first":101,"last":200}]}`)
	now := time.Now()
	m, _, err := wire.Split("certblocks", 1, "test-r101", blocks, wire.MaxChunkSize, now)
	if err != nil {
		t.Fatal(err)
	}
	m.Expires = now.Add(time.Hour)
	b, err := wire.SealBundle(m, blocks, h.central)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ImportDataset(ctx, ops.ImportRequest{Credentials: admin, Bundle: b}); err != nil {
		t.Fatalf("blocks import: %v", err)
	}
	sn, err := h.client.NextCert(ctx, req)
	if err != nil || sn.Seq != 101 {
		t.Fatalf("cert: got %s %v, want the block's first serial, sequence 101", sn, err)
	}
	e := lastEvent(t, h.client)
	if e.Kind != ledger.Certificate || e.Cert != sn.String() || e.Operator != demo.Admin || e.Trainee != "T001" || e.Detail != "P-ELEC" {
		t.Fatalf("allocation event: got %+v, want a certificate event with serial, trainee, programme, operator", e)
	}
}

// The development switch: a plain roster is taken, recorded as unsigned, every event flagged, and
// the status says so for the inspector's page.
func TestUnsignedSwitch(t *testing.T) {
	h := start(t, options{extra: "[trust]\nallow_unsigned_datasets = true\n"})
	ctx := context.Background()
	res, err := h.client.ImportDataset(ctx, ops.ImportRequest{Bundle: rosterJSON(t, demo.Roster(time.Now(), 4, 1))})
	if err != nil || res.Version != 1 {
		t.Fatalf("unsigned import under the switch: got %+v %v, want version 1 applied", res, err)
	}
	e := lastEvent(t, h.client)
	if e.Kind != ledger.Dataset || e.Dataset.Origin != "unsigned-file" || !e.HasFlag(ledger.FlagUnsignedDataset) {
		t.Fatalf("import event: got %s %+v flags %v, want a dataset event of origin unsigned-file flagged unsigned_dataset", e.Kind, e.Dataset, e.Flags)
	}
	out, err := h.client.SignIn(ctx, api.SignInRequest{Trainee: "T001", Operator: demo.Teacher, Secret: demo.TeacherSecret, Reason: "dry finger"})
	if err != nil || !out.Event.HasFlag(ledger.FlagUnsignedDataset) {
		t.Fatalf("sign-in under the switch: flags %v, %v; want unsigned_dataset", out.Event.Flags, err)
	}
	if s := h.status(); !s.UnsignedDatasets {
		t.Fatalf("status: unsigned_datasets %v, want true", s.UnsignedDatasets)
	}
}
