package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

func TestConfigValidate(t *testing.T) {
	env := synckit.NewEnv(t)
	good := env.IngestConfig("central", "tcp://127.0.0.1:1883")
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := good
	bad.Broker = "udp://x:1"
	bad.DB = ""
	bad.DeviceKeysDir = filepath.Join(env.Dir, "nope")
	bad.CentralKeyFile = env.CentralPub // a public key cannot sign
	bad.ShareGroup = "a/b"
	bad.GapTimeout = -1
	bad.ChunkSize = wire.MaxChunkSize + 1
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"broker", "db is empty", "device_keys_dir", "central_key_file", "share_group", "gap_timeout", "chunk_size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error does not mention %q:\n%v", want, err)
		}
	}
}

// Two devices drain into one ingester; the status, live over the socket and from the file once
// stopped, shows both acknowledged.
func TestTwoDevicesAndStatus(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	icfg := env.IngestConfig("central", b.URL())
	in, run := env.StartIngester(icfg)
	devs := []string{"jn-0001-r101", "jn-0001-r102"}
	for i, d := range devs {
		st := env.OpenStore(d, env.DeviceKey(d))
		defer st.Close()
		env.StartUplink(st, env.UplinkConfig(d, b.URL()))
		synckit.Append(t, st, 100*(i+1))
		synckit.WaitDrained(t, st, 30*time.Second)
		if err := synckit.Check(st, in.Scan); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var live []ingest.DeviceStatus
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if live, err = ingest.Status(ctx, icfg); err != nil {
			t.Fatal(err)
		}
		if len(live) == 2 && live[0].Online && live[1].Online && live[0].Backlog == 0 && live[1].Backlog == 0 &&
			live[0].AckedThrough == 101 && live[1].AckedThrough == 201 {
			break
		}
		if time.Now().After(deadline) {
			js, _ := json.MarshalIndent(live, "", "  ")
			t.Fatalf("live status: got %s\nwant two online devices acked through 101 and 201 with no backlog", js)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	stopped, err := ingest.Status(ctx, icfg)
	if err != nil {
		t.Fatalf("status of a stopped ingester: %v", err)
	}
	if len(stopped) != 2 || stopped[0].Device != devs[0] || stopped[1].AckedThrough != 201 {
		t.Fatalf("status from the file: got %+v, want both devices as recorded", stopped)
	}
	counts, err := ingest.Count(icfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 {
		t.Fatalf("Count: got %v, want two device epochs", counts)
	}
	for de, n := range counts {
		if want := map[string]uint64{devs[0]: 101, devs[1]: 201}[de.Device]; n != want {
			t.Errorf("Count %s: got %d, want %d", de.Device, n, want)
		}
	}
}

// The central system loses its database: a new ingester sees the device's events start beyond 1,
// waits GapTimeout, asks for a resync from seq 1, and ends up with the whole ledger.
func TestResyncAfterCentralLostItsDatabase(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	const dev = "jn-0001-r101"
	st := env.OpenStore(dev, env.DeviceKey(dev))
	defer st.Close()
	_, first := env.StartIngester(env.IngestConfig("first", b.URL()))
	env.StartUplink(st, env.UplinkConfig(dev, b.URL()))
	synckit.Append(t, st, 300)
	synckit.WaitDrained(t, st, 30*time.Second)
	first.Stop()

	in, _ := env.StartIngester(env.IngestConfig("second", b.URL()))
	synckit.Append(t, st, 50)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := in.Status()
		if len(s) == 1 && s[0].AckedThrough == 351 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second ingester status %+v, want acked through 351 after a resync", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	synckit.WaitDrained(t, st, 10*time.Second)
	if err := synckit.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
}

// A device without a registered key, or whose records do not verify with its key, gets nothing
// stored and nothing acknowledged.
func TestUnverifiedDevicesRefused(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))

	// Unregistered: its key file is never copied to the registry.
	privOnly, _, err := ledger.GenerateKeyFiles(filepath.Join(env.Dir, "unregistered"), "device")
	if err != nil {
		t.Fatal(err)
	}
	st1 := env.OpenStore("jn-0001-r199", privOnly)
	defer st1.Close()
	quick := func(dev string) uplink.Config {
		c := env.UplinkConfig(dev, b.URL())
		c.FlushTimeout = 100 * time.Millisecond // nothing will be acknowledged
		return c
	}
	env.StartUplink(st1, quick("jn-0001-r199"))
	synckit.Append(t, st1, 5)

	// Registered with another key: the device's records do not verify.
	env.DeviceKey("jn-0001-r198")
	wrong, _, err := ledger.GenerateKeyFiles(filepath.Join(env.Dir, "wrong"), "device")
	if err != nil {
		t.Fatal(err)
	}
	st2 := env.OpenStore("jn-0001-r198", wrong)
	defer st2.Close()
	env.StartUplink(st2, quick("jn-0001-r198"))
	synckit.Append(t, st2, 5)

	time.Sleep(2500 * time.Millisecond)
	for _, st := range []interface{ Acked() (uint64, error) }{st1, st2} {
		if acked, _ := st.Acked(); acked != 0 {
			t.Errorf("acked %d for an unverified device, want 0", acked)
		}
	}
	n := 0
	in.Scan(func(string, uint64, uint64, ledger.Record) error { n++; return nil })
	if n != 0 {
		t.Errorf("ingester stored %d records of unverified devices, want 0", n)
	}
	s := in.Status()
	if len(s) != 1 || s[0].Device != "jn-0001-r198" || !strings.Contains(s[0].LastError, "does not verify") {
		t.Errorf("status %+v: want only r198, with a verification error", s)
	}
}

func writeRoster(t *testing.T, dir string, version uint64) string {
	t.Helper()
	start := time.Date(2026, 11, 27, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	r := roster.Roster{Version: version, Issued: start,
		Institutions: []roster.Institution{{Code: "0001", City: "3701", County: "02", Name: "济南市历下区职业培训学校"}},
		Programmes:   []roster.Programme{{ID: "P1", Institution: "0001", Occupation: "电工", Category: "A", Hours: 80}},
		Sessions:     []roster.Session{{ID: "S1", Programme: "P1", Class: "C1", Start: start, End: start.Add(time.Hour)}},
	}
	// Trainees make it big enough for several chunks.
	for i := range 40 {
		r.Trainees = append(r.Trainees, roster.Trainee{ID: fmt.Sprintf("T%03d", i), Name: "学员", IDNumber: id(fmt.Sprintf("370102199001%02d%03d", i%28+1, i)),
			Enrolments: []roster.Enrolment{{Class: "C1"}}})
	}
	b, _ := json.Marshal(r)
	p := filepath.Join(dir, fmt.Sprintf("roster-%d.json", version))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func id(d17 string) string { return roster.WithCheckChar(d17) }

// Publish checks a roster, keeps it, and the ingester sends it (signed, in chunks) to the device
// whose state reports an older version; the device applies it and says so.
func TestPublishDataset(t *testing.T) {
	t.Parallel()
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	icfg := env.IngestConfig("central", b.URL())
	ctx := context.Background()

	// Published while no ingester runs: sent when it starts.
	if err := ingest.Publish(ctx, icfg, "roster", 0, writeRoster(t, env.Dir, 3)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		version uint64
		file    string
		want    string
	}{
		{"older", 2, writeRoster(t, env.Dir, 2), "not above"},
		{"version mismatch", 5, writeRoster(t, env.Dir, 4), "says version 4"},
		{"invalid", 0, func() string {
			p := filepath.Join(env.Dir, "bad.json")
			os.WriteFile(p, []byte(`{"version":9,"institutions":[{"code":"x"}]}`), 0o644)
			return p
		}(), "problem"},
	} {
		if err := ingest.Publish(ctx, icfg, "roster", tc.version, tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("publish %s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if err := ingest.Publish(ctx, icfg, "roster", 3, writeRoster(t, env.Dir, 3)); err != nil {
		t.Errorf("publishing the same version with the same content again: %v", err)
	}

	in, _ := env.StartIngester(icfg)
	const dev = "jn-0001-r101"
	st := env.OpenStore(dev, env.DeviceKey(dev))
	defer st.Close()
	applied := make(chan uint64, 10)
	ucfg := env.UplinkConfig(dev, b.URL())
	ucfg.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) {
		if d.Roster != nil {
			applied <- d.Roster.Version
		}
	})
	env.StartUplink(st, ucfg)
	waitApplied := func(want uint64) {
		t.Helper()
		select {
		case v := <-applied:
			if v != want {
				t.Fatalf("device applied roster %d, want %d", v, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("device never applied roster %d", want)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := in.Status()
			if len(s) == 1 && s[0].DatasetVersions["roster"] == want && s[0].Applied["roster"].Version == want &&
				s[0].Applied["roster"].Status == wire.StatusApplied {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ingester status %+v: want roster %d applied and reported", s, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitApplied(3)

	// Published while the ingester runs: the socket tells it at once.
	if err := ingest.Publish(ctx, icfg, "roster", 4, writeRoster(t, env.Dir, 4)); err != nil {
		t.Fatal(err)
	}
	waitApplied(4)
}
