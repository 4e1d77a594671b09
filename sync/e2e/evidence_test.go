package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
)

// The photos the events name reach the central system after the events, each acknowledged by its
// SHA-256 once the ingester holds it; a photo the ingester cannot take (its bytes no longer match
// its name) is never acknowledged, and the box keeps it and the cursor before it.
func TestEvidenceUpload(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	key := env.DeviceKey("jn-0001-r101")
	k, err := ledger.LoadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Config{Path: env.StorePath("jn-0001-r101"), Device: "jn-0001-r101", Key: k,
		EvidenceDir: filepath.Join(env.Dir, "evidence")}, env.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	photo := func(kind drivers.EvidenceKind, s string) ledger.Photo {
		ref, err := st.PutEvidence(kind, []byte("\xff\xd8"+s+"\xff\xd9"))
		if err != nil {
			t.Fatal(err)
		}
		return ledger.Photo{SHA256: ref.SHA256, Kind: string(ref.Kind), Size: ref.Size}
	}
	frame, crop1, crop2 := photo(drivers.Frame, "the room"), photo(drivers.Crop, "face 1"), photo(drivers.Crop, "face 2")
	synckit.Append(t, st, 20)
	for _, e := range []ledger.Event{
		{Kind: ledger.SpotCheck, Source: "room-cam", Session: "S-1", Evidence: []ledger.Photo{crop1, frame, crop2}, Time: clock.Now()},
		{Kind: ledger.SignIn, Trainee: "T1", Session: "S-1", Evidence: []ledger.Photo{crop1, frame}, Time: clock.Now()},
	} {
		if _, err := st.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	synckit.Append(t, st, 5)
	// A photo whose file was damaged on the box after its event: the ingester refuses it.
	bad := photo(drivers.Crop, "face 3")
	if err := os.WriteFile(st.EvidencePath(bad.SHA256), []byte("\xff\xd8 other bytes \xff\xd9"), 0o640); err != nil {
		t.Fatal(err)
	}
	badSeq, err := st.Append(ledger.Event{Kind: ledger.SpotCheck, Source: "room-cam", Session: "S-1", Evidence: []ledger.Photo{bad}, Time: clock.Now()})
	if err != nil {
		t.Fatal(err)
	}

	icfg := env.IngestConfig("central", b.URL())
	_, ingRun := env.StartIngester(icfg)
	up, upRun := env.StartUplink(st, env.UplinkConfig("jn-0001-r101", b.URL()))
	synckit.WaitDrained(t, st, 30*time.Second)
	acked := func(p ledger.Photo) bool {
		ok, err := st.EvidenceAcked(p.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	deadline := time.Now().Add(20 * time.Second)
	for !(acked(frame) && acked(crop1) && acked(crop2)) {
		if time.Now().After(deadline) {
			t.Fatalf("evidence acks: frame %v crop1 %v crop2 %v, want all three (stats %+v)", acked(frame), acked(crop1), acked(crop2), up.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range []ledger.Photo{frame, crop1, crop2} {
		got, err := os.ReadFile(filepath.Join(icfg.DatasetDir, "evidence", p.SHA256[:2], p.SHA256+".jpg"))
		want, _ := os.ReadFile(st.EvidencePath(p.SHA256))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("photo %s at the ingester: got %d bytes, %v, want the box's %d", p.SHA256[:12], len(got), err, len(want))
		}
	}
	time.Sleep(time.Second) // the damaged photo has had its chances
	if acked(bad) {
		t.Errorf("the damaged photo was acknowledged: want it refused and kept unacknowledged")
	}
	if _, err := os.Stat(st.EvidencePath(bad.SHA256)); err != nil {
		t.Errorf("the unacknowledged photo: %v, want it kept", err)
	}
	through, err := st.EvidenceThrough()
	if err != nil || through != badSeq.Seq-1 {
		t.Errorf("evidence cursor: got %d, %v, want %d (every photo acknowledged before the damaged one)", through, err, badSeq.Seq-1)
	}
	if s := up.Stats(); s.EvidenceAcks < 3 || s.EvidenceSent < 4 {
		t.Errorf("stats: got %+v, want at least 3 acks of at least 4 sends", s)
	}
	if err := upRun.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ingRun.Stop(); err != nil {
		t.Fatal(err)
	}
}
