package store_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
)

func openStore(t *testing.T, path string, key ed25519.PrivateKey) *store.Store {
	t.Helper()
	s, err := store.Open(store.Config{Path: path, Device: "jn-0001-r101", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rosterJSON(version uint64, retired bool) []byte {
	return fmt.Appendf(nil, `{"version":%d,"issued":"2026-11-27T08:00:00+08:00","institutions":[{"code":"0001","city":"3701","county":"00","name":"济南技师学院","accepts_vouchers":false,"retired":%v}],"programmes":[],"sessions":[],"trainees":[],"vouchers":[]}`, version, retired)
}

// decodeRoster is the check a caller passes to SwapRoster: strict decoding and validation.
func decodeRoster(_, content []byte) (*roster.Roster, error) {
	r, err := roster.Decode(content)
	if err != nil {
		return nil, err
	}
	return r, r.Validate(time.Now())
}

// stageWhole stages content as version in chunks of n bytes.
func stageWhole(t *testing.T, s *store.Store, version uint64, content []byte, n int) store.Staged {
	t.Helper()
	chunks := (len(content) + n - 1) / n
	st, err := s.Stage(store.RosterDataset, version, []byte("manifest"), chunks)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < chunks; i++ {
		if st, err = s.StageChunk(store.RosterDataset, version, i, content[i*n:min((i+1)*n, len(content))]); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestStageResumeAndSwap(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "kaoqin.db")
	s := openStore(t, path, key)
	content := rosterJSON(5, false)
	st, err := s.Stage(store.RosterDataset, 5, []byte("m5"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Missing, []int{0, 1, 2}) || st.Complete() {
		t.Fatalf("new staging: missing %v, want [0 1 2]", st.Missing)
	}
	n := (len(content) + 2) / 3
	if _, err := s.StageChunk(store.RosterDataset, 5, 0, content[:n]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StageChunk(store.RosterDataset, 4, 1, content[n:2*n]); !errors.Is(err, store.ErrNotStaged) {
		t.Fatalf("chunk of another version: got %v, want ErrNotStaged", err)
	}
	if _, err := s.SwapRoster(5, "mqtt", decodeRoster); !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("swap of an incomplete staging: got %v, want ErrIncomplete", err)
	}

	// Killed here: the staged chunk survives a reopen, and the same manifest resumes it.
	s.Close()
	s = openStore(t, path, key)
	defer s.Close()
	all, err := s.StagedDatasets()
	if err != nil || len(all) != 1 || all[0].Version != 5 || !reflect.DeepEqual(all[0].Missing, []int{1, 2}) {
		t.Fatalf("staged after reopen: %+v, %v; want version 5 missing [1 2]", all, err)
	}
	if st, _ = s.Stage(store.RosterDataset, 5, []byte("m5"), 3); !reflect.DeepEqual(st.Missing, []int{1, 2}) {
		t.Fatalf("same manifest again: missing %v, want [1 2] (resumed)", st.Missing)
	}
	for i := 1; i < 3; i++ {
		if st, err = s.StageChunk(store.RosterDataset, 5, i, content[i*n:min((i+1)*n, len(content))]); err != nil {
			t.Fatal(err)
		}
	}
	if !st.Complete() {
		t.Fatalf("all chunks staged: missing %v", st.Missing)
	}
	var gotManifest string
	info, err := s.SwapRoster(5, "mqtt", func(m, c []byte) (*roster.Roster, error) {
		gotManifest = string(m)
		return decodeRoster(m, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 5 || info.From != "mqtt" || gotManifest != "m5" {
		t.Fatalf("swap: info %+v manifest %q; want version 5 from mqtt, manifest m5", info, gotManifest)
	}
	r, _, err := s.Roster()
	if err != nil || r.Version != 5 {
		t.Fatalf("active roster after swap: %+v, %v; want version 5", r, err)
	}
	if _, ok, _ := s.StagedDataset(store.RosterDataset); ok {
		t.Fatal("staging left after the swap")
	}
	// The swap is recorded as the dataset's applied event, naming what it applied.
	var last ledger.Event
	if err := s.Scan(1, func(_ uint64, r ledger.Record) (err error) { last, err = r.Event(); return err }); err != nil {
		t.Fatal(err)
	}
	if d := last.Dataset; last.Kind != ledger.Dataset || d == nil || !d.Applied || d.Name != store.RosterDataset || d.Version != 5 ||
		d.Origin != "mqtt" || last.Note != "roster version 5 applied" {
		t.Fatalf("the swap's event: %+v (dataset %+v); want roster version 5 from mqtt, applied", last, last.Dataset)
	}
	if v, _ := s.DatasetVersions(); v[store.RosterDataset] != 5 {
		t.Fatalf("dataset versions: got %v, want roster 5", v)
	}
}

func TestSwapRefusalsKeepActiveRoster(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, filepath.Join(t.TempDir(), "kaoqin.db"), key)
	defer s.Close()
	stageWhole(t, s, 3, rosterJSON(3, true), 50)
	if _, err := s.SwapRoster(3, "mqtt", decodeRoster); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		version uint64
		content []byte
		check   func(m, c []byte) (*roster.Roster, error)
		want    string
	}{
		{"check refuses", 4, rosterJSON(4, true), func(m, c []byte) (*roster.Roster, error) { return nil, errors.New("bad signature") }, "bad signature"},
		{"malformed", 4, []byte(`{"version":4,"bogus":1}`), decodeRoster, "unknown field"},
		{"not newer", 2, rosterJSON(2, true), decodeRoster, "not newer"},
		{"version differs", 4, rosterJSON(6, true), decodeRoster, "says version 6"},
		{"retired code reused", 4, rosterJSON(4, false), decodeRoster, "never reassigned"},
	} {
		stageWhole(t, s, tc.version, tc.content, 64)
		_, err := s.SwapRoster(tc.version, "mqtt", tc.check)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
		if _, ok, _ := s.StagedDataset(store.RosterDataset); !ok {
			t.Errorf("%s: the refused staging is gone; want it kept for the caller to discard", tc.name)
		}
		if err := s.Discard(store.RosterDataset, tc.version); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.StagedDataset(store.RosterDataset); ok {
			t.Errorf("%s: staging left after Discard", tc.name)
		}
		if r, _, _ := s.Roster(); r.Version != 3 {
			t.Errorf("%s: active roster version %d, want 3 kept", tc.name, r.Version)
		}
	}
}

func TestStageNewVersionReplacesOld(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, filepath.Join(t.TempDir(), "kaoqin.db"), key)
	defer s.Close()
	stageWhole(t, s, 3, rosterJSON(3, false), 40)
	st, err := s.Stage(store.RosterDataset, 4, []byte("m4"), 2)
	if err != nil || st.Version != 4 || len(st.Missing) != 2 {
		t.Fatalf("stage v4 over v3: %+v, %v; want version 4 with 2 missing", st, err)
	}
	if err := s.Discard(store.RosterDataset, 3); err != nil {
		t.Fatal(err)
	}
	if st, ok, _ := s.StagedDataset(store.RosterDataset); !ok || st.Version != 4 {
		t.Fatalf("Discard of v3 touched the v4 staging: %+v %v", st, ok)
	}
}

func TestAcceptCommandRefusesReplay(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "kaoqin.db")
	s := openStore(t, path, key)
	for _, tc := range []struct {
		id   uint64
		want bool
	}{{10, true}, {10, false}, {9, false}, {11, true}} {
		got, err := s.AcceptCommand(tc.id)
		if err != nil || got != tc.want {
			t.Fatalf("AcceptCommand(%d) = %v, %v; want %v", tc.id, got, err, tc.want)
		}
	}
	s.Close()
	s = openStore(t, path, key)
	defer s.Close()
	if got, _ := s.AcceptCommand(11); got {
		t.Fatal("command 11 accepted again after a reopen")
	}
}
