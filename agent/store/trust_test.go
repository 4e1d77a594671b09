package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
)

func rosterIn(t *testing.T, r *roster.Roster) DatasetIn {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return DatasetIn{Ref: ledger.DatasetRef{Name: RosterDataset, Version: r.Version, SHA256: hexSHA(raw), Origin: OriginFile}, Content: raw, Operator: "张管理"}
}

func blocksIn(t *testing.T, device string, version uint64, blocks ...cert.Block) DatasetIn {
	t.Helper()
	raw, err := json.Marshal(cert.Blocks{Version: version, Device: device, Issued: time.Now(), Blocks: blocks})
	if err != nil {
		t.Fatal(err)
	}
	return DatasetIn{Ref: ledger.DatasetRef{Name: cert.BlocksDataset, Version: version, SHA256: hexSHA(raw), Origin: OriginDownlink}, Content: raw}
}

// datasetEvents lists the dataset events of the ledger as "name v applied|reason".
func datasetEvents(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	s.Scan(1, func(seq uint64, r ledger.Record) error {
		e, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == ledger.Dataset {
			what := string(e.Reason)
			if e.Dataset.Applied {
				what = "applied"
			}
			out = append(out, fmt.Sprintf("%s %d %s", e.Dataset.Name, e.Dataset.Version, what))
		}
		return nil
	})
	return out
}

func TestEveryDatasetAttemptIsAnEvent(t *testing.T) {
	cfg := testConfig(t)
	cfg.Institution = "0001"
	s := open(t, cfg)
	if _, err := s.ApplyDataset(rosterIn(t, testRoster(2, false))); err != nil {
		t.Fatal(err)
	}
	// The same version again: a replay.
	_, err := s.ApplyDataset(rosterIn(t, testRoster(2, false)))
	var de *DatasetError
	if !errors.As(err, &de) || de.Reason != ledger.DatasetReplayed || !errors.Is(err, ErrNotNewer) {
		t.Fatalf("replay: got %v, want a dataset_replayed refusal wrapping ErrNotNewer", err)
	}
	// Refused by the caller (a forged signature): recorded with what it claimed.
	_, err = s.ApplyDataset(DatasetIn{Ref: ledger.DatasetRef{Name: RosterDataset, Version: 9, Origin: OriginFile},
		Refused: ledger.DatasetBadSignature, Why: errors.New("wire: signature does not verify")})
	if !errors.As(err, &de) || de.Reason != ledger.DatasetBadSignature || de.Event.Seq == 0 {
		t.Fatalf("forged: got %v, want a recorded dataset_bad_signature refusal", err)
	}
	// The code retired, then made active again.
	if _, err := s.ApplyDataset(rosterIn(t, testRoster(3, true))); err != nil {
		t.Fatal(err)
	}
	_, err = s.ApplyDataset(rosterIn(t, testRoster(4, false)))
	if !errors.As(err, &de) || de.Reason != ledger.DatasetInvalid || !strings.Contains(err.Error(), "never reassigned") {
		t.Fatalf("a retired code reused: got %v, want dataset_invalid naming the retired code", err)
	}
	got := strings.Join(datasetEvents(t, s), "; ")
	want := "roster 2 applied; roster 2 dataset_replayed; roster 9 dataset_bad_signature; roster 3 applied; roster 4 dataset_invalid"
	if got != want {
		t.Fatalf("dataset events:\n got %s\nwant %s", got, want)
	}
	r, info, err := s.Roster()
	if err != nil || r.Version != 3 || info.From != OriginFile {
		t.Fatalf("active roster: %+v %+v %v; want version 3 from file kept", r, info, err)
	}
}

func runningRoster(version uint64, now time.Time, trainees ...string) *roster.Roster {
	r := testRoster(version, false)
	r.Programmes = []roster.Programme{{ID: "P1", Institution: "0001", Occupation: "电工", Category: "A", Hours: 40}}
	r.Sessions = []roster.Session{{ID: "S1", Programme: "P1", Class: "C1", Start: now.Add(-time.Hour), End: now.Add(time.Hour)}}
	ids := []string{roster.WithCheckChar("37010219900101123"), roster.WithCheckChar("37010219900102123")}
	for i, id := range trainees {
		r.Trainees = append(r.Trainees, roster.Trainee{ID: id, Name: "学员" + id, IDNumber: ids[i], Enrolments: []roster.Enrolment{{Class: "C1"}}})
	}
	return r
}

// Datasets that would empty the room are refused, whoever signed them.
func TestRosterThatEmptiesTheRoomRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.Institution = "0001"
	s := open(t, cfg)
	now := time.Now()
	if _, err := s.ApplyDataset(rosterIn(t, runningRoster(5, now, "T1", "T2"))); err != nil {
		t.Fatal(err)
	}
	var de *DatasetError
	// Nothing but a version.
	empty := DatasetIn{Ref: ledger.DatasetRef{Name: RosterDataset, Version: 9999999999, Origin: OriginDownlink}, Content: []byte(`{"version":9999999999}`)}
	if _, err := s.ApplyDataset(empty); !errors.As(err, &de) || de.Reason != ledger.DatasetEmptiesRoom || !strings.Contains(err.Error(), "no institution 0001") {
		t.Fatalf(`{"version":9999999999}: got %v, want dataset_empties_room naming the institution`, err)
	}
	// Every trainee of the running session dropped.
	if _, err := s.ApplyDataset(rosterIn(t, runningRoster(6, now))); !errors.As(err, &de) || de.Reason != ledger.DatasetEmptiesRoom || !strings.Contains(err.Error(), "session S1") {
		t.Fatalf("running session emptied: got %v, want dataset_empties_room naming S1", err)
	}
	// One trainee dropped, one kept: a real change, applied.
	if _, err := s.ApplyDataset(rosterIn(t, runningRoster(7, now, "T1"))); err != nil {
		t.Fatalf("one trainee dropped: %v", err)
	}
	r, _, _ := s.Roster()
	if r.Version != 7 || len(r.Trainees) != 1 {
		t.Fatalf("active roster: version %d with %d trainees, want 7 with 1", r.Version, len(r.Trainees))
	}
}

var jinan = cert.Issuer{City: "3701", County: "02", Institution: "0001"}

func alloc(t *testing.T, s *Store, iss cert.Issuer) (string, error) {
	t.Helper()
	sn, e, err := s.NextCert(CertRequest{Issuer: iss, Year: 2026, Category: cert.Employment, Trainee: "T1", Programme: "P1", Operator: "张管理"})
	if err != nil {
		return "", err
	}
	if e.Kind != ledger.Certificate || e.Cert != sn.String() || e.Operator != "张管理" || e.Trainee != "T1" || e.Detail != "P1" {
		t.Fatalf("allocation event: got %+v, want a certificate event naming serial, trainee, programme and operator", e)
	}
	return sn.String(), nil
}

// Serials never repeat: not across a restart, not across an epoch change (a damaged file moved
// aside), not across two boxes of one institution, which get disjoint blocks.
func TestCertSerialsNeverRepeat(t *testing.T) {
	block := func(first, last int) cert.Block {
		return cert.Block{City: "3701", County: "02", Institution: "0001", Year: 2026, Category: "A", First: first, Last: last}
	}
	cfg := testConfig(t)
	s := open(t, cfg)
	if _, err := alloc(t, s, jinan); !errors.Is(err, cert.ErrOutsideBlocks) {
		t.Fatalf("no blocks: got %v, want ErrOutsideBlocks", err)
	}
	if _, err := s.ApplyDataset(blocksIn(t, "another-box", 1, block(1, 3))); err == nil {
		t.Fatal("blocks for another box applied")
	}
	if _, err := s.ApplyDataset(blocksIn(t, cfg.Device, 1, block(1, 3), block(10, 11))); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	take := func(s *Store) string {
		t.Helper()
		sn, err := alloc(t, s, jinan)
		if err != nil {
			t.Fatal(err)
		}
		if seen[sn] {
			t.Fatalf("serial %s handed out twice", sn)
		}
		seen[sn] = true
		return sn
	}
	take(s)
	take(s)
	s.Close()
	s = open(t, cfg)
	if got := take(s); got != "37010200012600003A" {
		t.Fatalf("after restart: got %s, want 37010200012600003A", got)
	}
	if got := take(s); got != "37010200012600010A" {
		t.Fatalf("first block used up: got %s, want the next block's 37010200012600010A", got)
	}
	s.Close()

	// The file is damaged: a new epoch, the blocks dataset sent again, and the counter continues
	// from the salvaged allocations, not from the block's start.
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("garbage!", 1024)), 0)
	f.Close()
	s = open(t, cfg)
	defer s.Close()
	if _, err := s.ApplyDataset(blocksIn(t, cfg.Device, 1, block(1, 3), block(10, 11))); err != nil {
		t.Fatal(err)
	}
	if got := take(s); got != "37010200012600011A" {
		t.Fatalf("after an epoch change: got %s, want 37010200012600011A", got)
	}
	if _, err := alloc(t, s, jinan); !errors.Is(err, cert.ErrOutsideBlocks) {
		t.Fatalf("blocks used up: got %v, want ErrOutsideBlocks", err)
	}

	// A second box of the institution has its own block: no collision.
	cfg2 := testConfig(t)
	cfg2.Device = "jn-0001-r102"
	s2 := open(t, cfg2)
	defer s2.Close()
	if _, err := s2.ApplyDataset(blocksIn(t, cfg2.Device, 1, block(4, 9))); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		take(s2)
	}
	if _, err := alloc(t, s2, jinan); !errors.Is(err, cert.ErrOutsideBlocks) {
		t.Fatalf("second box past its block: got %v, want ErrOutsideBlocks", err)
	}
	if len(seen) != 11 {
		t.Fatalf("got %d distinct serials, want 11", len(seen))
	}
}

// Retiring Jinan's 0001 does not block Qingdao's 0001: retired codes are keyed by the whole prefix.
func TestRetiredCodeKeyedByPrefix(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	qingdao := cert.Issuer{City: "3702", County: "00", Institution: "0001"}
	r := testRoster(1, false)
	r.Institutions = []roster.Institution{
		{Code: "0001", City: "3701", County: "02", Name: "济南技师学院", Retired: true},
	}
	if _, err := s.ApplyDataset(rosterIn(t, r)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyDataset(blocksIn(t, cfg.Device, 1,
		cert.Block{City: "3702", County: "00", Institution: "0001", Year: 2026, Category: "A", First: 1, Last: 5},
		cert.Block{City: "3701", County: "02", Institution: "0001", Year: 2026, Category: "A", First: 1, Last: 5})); err != nil {
		t.Fatal(err)
	}
	if _, err := alloc(t, s, jinan); !errors.Is(err, cert.ErrRetired) {
		t.Fatalf("Jinan 0001 retired: got %v, want ErrRetired", err)
	}
	if sn, err := alloc(t, s, qingdao); err != nil || sn != "37020000012600001A" {
		t.Fatalf("Qingdao 0001: got %s %v, want 37020000012600001A", sn, err)
	}
}

// The development switch flags every event while it is on.
func TestUnsignedSwitchFlagsEveryEvent(t *testing.T) {
	cfg := testConfig(t)
	cfg.AllowUnsigned = true
	s := open(t, cfg)
	e, err := s.Append(signIn("T1"))
	if err != nil || !e.HasFlag(ledger.FlagUnsignedDataset) || !s.Unsigned() {
		t.Fatalf("event under the switch: flags %v, %v; want unsigned_dataset", e.Flags, err)
	}
}

// A code retired by an older version (kept by the 4-digit code alone) is rekeyed to its prefix
// from the active roster: Jinan's stays retired, Qingdao's 0001 is free.
func TestLegacyRetiredCodeMigrated(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	r := testRoster(1, true) // Jinan 0001, retired
	if _, err := s.ApplyDataset(rosterIn(t, r)); err != nil {
		t.Fatal(err)
	}
	// Make the file look like an older version's: the code alone.
	s.update(func(tx *bolt.Tx) error {
		ret := tx.Bucket(bucketRetired)
		ret.Delete([]byte("3701000001"))
		return ret.Put([]byte("0001"), []byte("2026-01-01"))
	})
	next := testRoster(2, false)
	next.Institutions = []roster.Institution{{Code: "0001", City: "3702", County: "00", Name: "青岛技能培训中心"}}
	if _, err := s.ApplyDataset(rosterIn(t, next)); err != nil {
		t.Fatalf("Qingdao's 0001 beside Jinan's retired 0001: %v", err)
	}
	back := testRoster(3, false)
	if _, err := s.ApplyDataset(rosterIn(t, back)); err == nil || !strings.Contains(err.Error(), "never reassigned") {
		t.Fatalf("Jinan's 0001 made active again: got %v, want refused", err)
	}
}

// A roster that came in unsigned keeps every event flagged until a signed one replaces it, across
// restarts and whatever the switch says then: turning the development switch off after loading
// an unsigned roster does not make the events it decides look trusted.
func TestUnsignedRosterFlagsEventsUntilReplaced(t *testing.T) {
	cfg := testConfig(t)
	cfg.AllowUnsigned = true
	s := open(t, cfg)
	in := rosterIn(t, testRoster(1, false))
	in.Ref.Origin = OriginUnsigned
	if _, err := s.ApplyDataset(in); err != nil {
		t.Fatal(err)
	}
	s.Close()

	cfg.AllowUnsigned = false
	s = open(t, cfg)
	flagged := func(when string, want bool) {
		t.Helper()
		e, err := s.Append(signIn("T1"))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.HasFlag(ledger.FlagUnsignedDataset); got != want || s.Unsigned() != want {
			t.Fatalf("%s: event flagged %v, Unsigned() %v; want %v", when, got, s.Unsigned(), want)
		}
	}
	flagged("reopened with the switch off, the unsigned roster active", true)
	if _, err := s.ApplyDataset(rosterIn(t, testRoster(2, false))); err != nil {
		t.Fatal(err)
	}
	flagged("a signed roster applied", false)
	s.Close()
	s = open(t, cfg)
	flagged("reopened on the signed roster", false)
}

// Serial blocks are versioned like the roster: each version once, only forward, and what the
// gate applied is what it returns and keeps.
func TestCertBlocksOnlyGoForward(t *testing.T) {
	block := cert.Block{City: "3701", County: "02", Institution: "0001", Year: 2026, Category: "A", First: 1, Last: 9}
	cfg := testConfig(t)
	s := open(t, cfg)
	a, err := s.ApplyDataset(blocksIn(t, cfg.Device, 2, block))
	if err != nil {
		t.Fatal(err)
	}
	if a.Blocks == nil || a.Blocks.Version != 2 || len(a.Blocks.Blocks) != 1 {
		t.Fatalf("applied v2: got %+v, want the blocks of version 2", a.Blocks)
	}
	for _, v := range []uint64{2, 1} {
		_, err := s.ApplyDataset(blocksIn(t, cfg.Device, v, block))
		var de *DatasetError
		if !errors.As(err, &de) || de.Reason != ledger.DatasetReplayed || !errors.Is(err, ErrNotNewer) {
			t.Errorf("version %d after 2: got %v, want a dataset_replayed refusal", v, err)
		}
	}
	if _, err := s.ApplyDataset(blocksIn(t, cfg.Device, 3, block)); err != nil {
		t.Fatalf("version 3 after 2: %v", err)
	}
	if got, err := s.DatasetVersions(); err != nil || got[cert.BlocksDataset] != 3 {
		t.Fatalf("active versions: got %v, %v; want certblocks 3", got, err)
	}
	if b, err := s.CertBlocks(); err != nil || b == nil || b.Version != 3 {
		t.Fatalf("active blocks: got %+v, %v; want version 3", b, err)
	}
}

// Every code an older version retired by the code alone is rekeyed, not only the first.
func TestEveryLegacyRetiredCodeMigrated(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	r := testRoster(1, true)
	r.Institutions = append(r.Institutions, roster.Institution{Code: "0002", City: "3701", County: "00", Name: "济南职业培训学校", Retired: true})
	if _, err := s.ApplyDataset(rosterIn(t, r)); err != nil {
		t.Fatal(err)
	}
	s.update(func(tx *bolt.Tx) error {
		ret := tx.Bucket(bucketRetired)
		return errors.Join(ret.Delete([]byte("3701000001")), ret.Delete([]byte("3701000002")),
			ret.Put([]byte("0001"), []byte("2026-01-01")), ret.Put([]byte("0002"), []byte("2026-01-01")))
	})
	next := testRoster(2, false)
	next.Institutions = []roster.Institution{
		{Code: "0001", City: "3702", County: "00", Name: "青岛技能培训中心"},
		{Code: "0002", City: "3702", County: "00", Name: "青岛职业学校"},
	}
	if _, err := s.ApplyDataset(rosterIn(t, next)); err != nil {
		t.Fatalf("Qingdao's 0001 and 0002 beside Jinan's retired ones: %v", err)
	}
	back := testRoster(3, false)
	back.Institutions = []roster.Institution{{Code: "0002", City: "3701", County: "00", Name: "济南职业培训学校"}}
	if _, err := s.ApplyDataset(rosterIn(t, back)); err == nil || !strings.Contains(err.Error(), "never reassigned") {
		t.Fatalf("Jinan's 0002 made active again: got %v, want refused", err)
	}
}
