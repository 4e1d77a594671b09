package uplink_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/faultnet"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
	"github.com/kaoqin/kaoqin/sync/uplink"
	"github.com/kaoqin/kaoqin/sync/wire"
)

const device = "jn-0001-r101"

// idNumber makes a valid resident ID number from 17 digits.
func idNumber(d17 string) string { return roster.WithCheckChar(d17) }

// rosterJSON is a small valid roster of the given version.
func rosterJSON(t testing.TB, version uint64) []byte {
	start := time.Date(2026, 11, 27, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	r := roster.Roster{
		Version: version, Issued: start.Add(-24 * time.Hour),
		Institutions: []roster.Institution{{Code: "0001", City: "3701", County: "02", Name: "济南市历下区职业培训学校", AcceptsVouchers: true}},
		Programmes:   []roster.Programme{{ID: "P1", Institution: "0001", Occupation: "电工", Category: "A", Hours: 80}},
		Sessions:     []roster.Session{{ID: "S1", Programme: "P1", Class: "C1", Start: start, End: start.Add(3 * time.Hour)}},
		Trainees: []roster.Trainee{{ID: "T001", Name: "张三", IDNumber: idNumber("37010219900101123"),
			Enrolments: []roster.Enrolment{{Class: "C1"}}, Cards: []string{fmt.Sprintf("card-%d", version)}}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roster.Build(&r, time.Now()); err != nil {
		t.Fatalf("test roster is invalid: %v", err)
	}
	return b
}

// central is a hand-driven central system: it publishes datasets and commands to one device and
// collects what the device reports.
type central struct {
	t       *testing.T
	c       *brokertest.Client
	key     ed25519.PrivateKey
	applied chan wire.Applied
	states  chan *wire.State
}

func newCentral(t *testing.T, url string, key ed25519.PrivateKey) *central {
	t.Helper()
	c := &central{t: t, key: key, applied: make(chan wire.Applied, 100), states: make(chan *wire.State, 100)}
	c.c = brokertest.Dial(t, url, "test-central")
	c.sub(wire.AppliedTopic(synckit.Institution, device), func(p []byte) {
		a, err := wire.DecodeApplied(p)
		if err != nil {
			t.Errorf("device sent a malformed applied: %v", err)
			return
		}
		c.applied <- *a
	})
	c.sub(wire.StateTopic(synckit.Institution, device), func(p []byte) {
		if s, err := wire.DecodeState(p); err == nil {
			select {
			case c.states <- s:
			default:
			}
		}
	})
	return c
}

func (c *central) sub(topic string, fn func([]byte)) {
	c.c.Subscribe(topic, func(_ string, p []byte) { fn(p) })
}

func (c *central) publish(topic string, p []byte) {
	c.t.Helper()
	c.c.Publish(topic, false, p)
}

// waitOnline waits for an online state published from now on.
func (c *central) waitOnline() {
	c.t.Helper()
	since := time.Now()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-c.states:
			if s.Online && s.Clock != nil && !s.Clock.Wall.Before(since) {
				return
			}
		case <-deadline:
			c.t.Fatal("the device never published an online state")
		}
	}
}

// waitOffline waits for an offline state.
func (c *central) waitOffline() {
	c.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-c.states:
			if !s.Online {
				return
			}
		case <-deadline:
			c.t.Fatal("the device never published an offline state")
		}
	}
}

// dataset is a dataset version cut for the device: the manifest payload and the chunk payloads.
type dataset struct {
	manifest []byte
	chunks   [][]byte
	m        *wire.Manifest
}

func (c *central) dataset(name string, version uint64, content []byte, signer ed25519.PrivateKey, forDevice string) dataset {
	c.t.Helper()
	m, chunks, err := wire.Split(name, version, forDevice, content, 256, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	mp, err := wire.SealManifest(m, signer)
	if err != nil {
		c.t.Fatal(err)
	}
	d := dataset{manifest: mp, m: m}
	for i := range chunks {
		p, err := chunks[i].Encode()
		if err != nil {
			c.t.Fatal(err)
		}
		d.chunks = append(d.chunks, p)
	}
	return d
}

// send publishes the manifest and the chunks, skipping the indexes in skip.
func (c *central) send(name string, d dataset, skip ...int) {
	c.t.Helper()
	topic := wire.DataTopic(synckit.Institution, device, name)
	c.publish(topic, d.manifest)
	for i, p := range d.chunks {
		if !containsInt(skip, i) {
			c.publish(topic, p)
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// report waits for the next applied report.
func (c *central) report() wire.Applied {
	c.t.Helper()
	select {
	case a := <-c.applied:
		return a
	case <-time.After(10 * time.Second):
		c.t.Fatal("no applied report from the device")
		return wire.Applied{}
	}
}

// quiet fails if an applied report arrives within d.
func (c *central) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case a := <-c.applied:
		c.t.Fatalf("unexpected applied report %+v", a)
	case <-time.After(d):
	}
}

// refusals lists the notes of the refused dataset events, each "reason: note".
func refusals(t *testing.T, st *store.Store) []string {
	t.Helper()
	var notes []string
	if err := st.Scan(1, func(_ uint64, r ledger.Record) error {
		e, err := r.Event()
		if err == nil && e.Kind == ledger.Dataset && e.Dataset != nil && !e.Dataset.Applied {
			if e.Dataset.Origin != store.OriginDownlink {
				t.Errorf("dataset event of origin %q, want downlink", e.Dataset.Origin)
			}
			notes = append(notes, string(e.Reason)+": "+e.Note)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return notes
}

func activeRoster(t *testing.T, st *store.Store) uint64 {
	t.Helper()
	v, err := st.DatasetVersions()
	if err != nil {
		t.Fatal(err)
	}
	return v[store.RosterDataset]
}

func TestDatasets(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	cfg := env.UplinkConfig(device, b.URL())
	applied := make(chan uint64, 10)
	cfg.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) {
		if d.Roster != nil {
			applied <- d.Roster.Version
		}
	})
	env.StartUplink(st, cfg)
	key := synckit.Ed25519(t, env.CentralKey)
	c := newCentral(t, b.URL(), key)
	c.waitOnline()

	// Certificate serial blocks arrive as a dataset too, and apply for this device only.
	blocks := []byte(`{"version":1,"device":"` + device + `","issued":"2026-01-01T00:00:00Z","blocks":[{"city":"3701","county":"02","institution":"0001","year":2026,"category":"A","first":1,"last":50}]}`)
	c.send("certblocks", c.dataset("certblocks", 1, blocks, key, device))
	if a := c.report(); a.Status != wire.StatusApplied || a.Dataset != "certblocks" || a.Version != 1 {
		t.Fatalf("certblocks: report %+v, want applied version 1", a)
	}
	if bs, err := st.CertBlocks(); err != nil || bs == nil || bs.Blocks[0].Last != 50 {
		t.Fatalf("certblocks in the store: %+v %v, want the block 1-50", bs, err)
	}

	good := c.dataset("roster", 2, rosterJSON(t, 2), key, device)
	c.send("roster", good)
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 2 || a.SHA256 != good.m.SHA256 {
		t.Fatalf("v2: report %+v, want applied version 2 sha %s", a, good.m.SHA256[:12])
	}
	if v := <-applied; v != 2 {
		t.Fatalf("the downlink got roster version %d, want 2", v)
	}

	_, otherKey, _ := ed25519.GenerateKey(nil)
	corrupt := c.dataset("roster", 3, rosterJSON(t, 3), key, device)
	var bad wire.Chunk
	if err := json.Unmarshal(corrupt.chunks[1], &bad); err != nil {
		t.Fatal(err)
	}
	bad.Data[10] ^= 0x20
	corrupt.chunks[1], _ = bad.Encode()
	for _, tc := range []struct {
		name string
		send func()
		want string
	}{
		{"bad signature", func() { c.send("roster", c.dataset("roster", 3, rosterJSON(t, 3), otherKey, device)) }, "signature does not verify"},
		{"corrupt chunk", func() { c.send("roster", corrupt) }, "chunk 1 is corrupt"},
		{"missing chunk", func() { c.send("roster", c.dataset("roster", 3, rosterJSON(t, 3), key, device), 1) }, "chunks [1] missing"},
		{"malformed roster", func() { c.send("roster", c.dataset("roster", 3, []byte(`{"version":3,"bogus":true}`), key, device)) }, "unknown field"},
		{"invalid roster", func() {
			c.send("roster", c.dataset("roster", 3, bytes.Replace(rosterJSON(t, 3), []byte(`"hours":80`), []byte(`"hours":0`), 1), key, device))
		}, "hours must be positive"},
		{"version differs", func() { c.send("roster", c.dataset("roster", 3, rosterJSON(t, 4), key, device)) }, "says version 4"},
		{"another device", func() { c.send("roster", c.dataset("roster", 3, rosterJSON(t, 3), key, "jn-0001-r102")) }, `for device "jn-0001-r102"`},
		{"unknown dataset", func() { c.send("templates", c.dataset("templates", 3, []byte("x"), key, device)) }, "not supported"},
		{"empty roster, signed", func() { c.send("roster", c.dataset("roster", 3, []byte(`{"version":3}`), key, device)) }, "no institution 0001"},
	} {
		before := len(refusals(t, st))
		tc.send()
		a := c.report()
		if a.Status != wire.StatusRefused || a.Version != 3 || !strings.Contains(a.Reason, tc.want) {
			t.Errorf("%s: report %+v, want refused version 3 with %q", tc.name, a, tc.want)
		}
		if v := activeRoster(t, st); v != 2 {
			t.Errorf("%s: active roster version %d, want 2 kept", tc.name, v)
		}
		if notes := refusals(t, st); len(notes) != before+1 || !strings.Contains(notes[len(notes)-1], tc.want) {
			t.Errorf("%s: refused dataset events %q, want one more mentioning %q", tc.name, notes, tc.want)
		}
		if s, ok, _ := st.StagedDataset("roster"); ok {
			t.Errorf("%s: staging of version %d left behind", tc.name, s.Version)
		}
	}

	// A refusal names the version and content the manifest claims, though its signature failed.
	forged := c.dataset("roster", 3, rosterJSON(t, 3), otherKey, device)
	c.send("roster", forged)
	if a := c.report(); a.Status != wire.StatusRefused || a.Version != 3 || a.SHA256 != forged.m.SHA256 {
		t.Errorf("forged v3: report %+v, want refused version 3 sha %s", a, forged.m.SHA256[:12])
	}

	// Older: a replay, recorded, not reported. Equal: nothing changes, the device confirms what it has.
	before := len(refusals(t, st))
	c.send("roster", c.dataset("roster", 1, rosterJSON(t, 1), key, device))
	c.quiet(500 * time.Millisecond)
	c.send("roster", good)
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 2 {
		t.Errorf("v2 again: report %+v, want applied version 2", a)
	}
	if notes := refusals(t, st); len(notes) != before+1 || !strings.HasPrefix(notes[len(notes)-1], string(ledger.DatasetReplayed)) {
		t.Errorf("older and equal versions: refused dataset events %q, want one more, dataset_replayed", notes[before:])
	}
	if v := activeRoster(t, st); v != 2 {
		t.Errorf("after older and equal versions: active roster %d, want 2", v)
	}

	// A good version after all that is applied.
	c.send("roster", c.dataset("roster", 5, rosterJSON(t, 5), key, device))
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 5 {
		t.Fatalf("v5: report %+v, want applied version 5", a)
	}
	if v := <-applied; v != 5 {
		t.Fatalf("the downlink got roster version %d, want 5", v)
	}
}

func TestMain(m *testing.M) {
	synckit.ChildMain(m, map[string]func(){
		"kill-before-swap": func() { uplink.SetTestHookBeforeSwap(func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }) },
	})
}

// startChild runs the agent in a child process and waits until it is online.
func startChild(t *testing.T, c *central, cfg synckit.ChildConfig) *exec.Cmd {
	t.Helper()
	cmd := synckit.StartChild(t, cfg, nil)
	c.waitOnline()
	return cmd
}

func waitKilled(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the agent did not die before the swap")
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the agent exited with %v, want killed by SIGKILL", cmd.ProcessState)
	}
}

// The agent is killed between staging a complete dataset and swapping it in, and then in the
// middle of staging one. Each time the restarted agent finishes the job: the active roster is the
// old one or the new one, never a mix, and no staging is left.
func TestDatasetKilledBetweenStagingAndSwap(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	keyFile := env.DeviceKey(device)
	env.OpenStore(device, keyFile).Close()
	key := synckit.Ed25519(t, env.CentralKey)
	c := newCentral(t, b.URL(), key)
	cfg := synckit.ChildConfig{StorePath: env.StorePath(device), KeyFile: keyFile, Device: device, Broker: b.URL(),
		CentralPub: env.CentralPub, Hook: "kill-before-swap"}

	// 1. Killed after the last chunk is staged, before the swap.
	cmd := startChild(t, c, cfg)
	v7 := c.dataset("roster", 7, rosterJSON(t, 7), key, device)
	c.send("roster", v7)
	waitKilled(t, cmd)
	st := env.OpenStore(device, keyFile)
	staged, ok, err := st.StagedDataset("roster")
	if err != nil || !ok || staged.Version != 7 || !staged.Complete() {
		t.Fatalf("after the kill: staged %+v ok %v err %v, want version 7 complete", staged, ok, err)
	}
	if v := activeRoster(t, st); v != 0 {
		t.Fatalf("after the kill: active roster %d, want none yet", v)
	}
	cfgUp := env.UplinkConfig(device, b.URL())
	applied := make(chan uint64, 10)
	cfgUp.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) {
		if d.Roster != nil {
			applied <- d.Roster.Version
		}
	})
	_, run := env.StartUplink(st, cfgUp)
	select {
	case v := <-applied:
		if v != 7 {
			t.Fatalf("resumed swap applied version %d, want 7", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the restarted agent did not swap in the staged dataset")
	}
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 7 || a.SHA256 != v7.m.SHA256 {
		t.Fatalf("resumed swap: report %+v, want applied version 7", a)
	}
	if _, ok, _ := st.StagedDataset("roster"); ok {
		t.Fatal("staging left after the resumed swap")
	}
	run.Stop()
	st.Close()

	// 2. Killed in the middle of staging: half the chunks arrived.
	cfg.Hook = ""
	cmd = startChild(t, c, cfg)
	v8 := c.dataset("roster", 8, rosterJSON(t, 8), key, device)
	half := make([]int, 0)
	for i := len(v8.chunks) / 2; i < len(v8.chunks); i++ {
		half = append(half, i)
	}
	c.send("roster", v8, half...)
	time.Sleep(300 * time.Millisecond) // let it stage what it got
	cmd.Process.Signal(syscall.SIGKILL)
	waitKilled(t, cmd)
	st = env.OpenStore(device, keyFile)
	defer st.Close()
	staged, ok, _ = st.StagedDataset("roster")
	if !ok || staged.Version != 8 || staged.Complete() {
		t.Fatalf("after the kill mid-staging: staged %+v ok %v, want version 8 incomplete", staged, ok)
	}
	if v := activeRoster(t, st); v != 7 {
		t.Fatalf("after the kill mid-staging: active roster %d, want 7", v)
	}
	_, run = env.StartUplink(st, cfgUp)
	c.waitOnline()
	c.send("roster", v8) // the central resends: the same manifest resumes the staging
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 8 {
		t.Fatalf("resumed staging: report %+v, want applied version 8", a)
	}
	if v := <-applied; v != 8 {
		t.Fatalf("the downlink got roster version %d, want 8", v)
	}
	run.Stop()
}

// A complete staging is swapped in at start even with the broker down, and the applied report
// goes out once the connection comes up.
func TestStagedDatasetAppliedOfflineReportedLater(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	key := synckit.Ed25519(t, env.CentralKey)
	c := newCentral(t, b.URL(), key)
	v3 := c.dataset("roster", 3, rosterJSON(t, 3), key, device)
	if _, err := st.Stage("roster", 3, v3.manifest, len(v3.chunks)); err != nil {
		t.Fatal(err)
	}
	for i, p := range v3.chunks {
		var ch wire.Chunk
		if err := json.Unmarshal(p, &ch); err != nil {
			t.Fatal(err)
		}
		if _, err := st.StageChunk("roster", 3, i, ch.Data); err != nil {
			t.Fatal(err)
		}
	}
	proxy, err := faultnet.Listen(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.Cut() // offline
	cfg := env.UplinkConfig(device, proxy.URL())
	applied := make(chan uint64, 1)
	cfg.Downlink = uplink.DownlinkFunc(func(d uplink.Delivery) {
		if d.Roster != nil {
			applied <- d.Roster.Version
		}
	})
	env.StartUplink(st, cfg)
	select {
	case v := <-applied:
		if v != 3 {
			t.Fatalf("applied version %d, want 3", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the staged dataset was not swapped in while offline")
	}
	c.quiet(300 * time.Millisecond)
	proxy.Heal()
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 3 || a.SHA256 != v3.m.SHA256 {
		t.Fatalf("report after reconnecting: %+v, want applied version 3", a)
	}
	c.quiet(1500 * time.Millisecond) // once: the report leaves the pending list when published
}

// An older manifest arriving while a newer version is staged (a resend overtaken by the next
// version) leaves the newer staging alone: its missing chunk, when it comes, completes it.
func TestOlderManifestKeepsNewerStaging(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{})
	st := env.OpenStore(device, env.DeviceKey(device))
	defer st.Close()
	cfg := env.UplinkConfig(device, b.URL())
	cfg.DatasetTimeout = time.Minute
	env.StartUplink(st, cfg)
	key := synckit.Ed25519(t, env.CentralKey)
	c := newCentral(t, b.URL(), key)
	c.waitOnline()

	v4 := c.dataset("roster", 4, rosterJSON(t, 4), key, device)
	if len(v4.chunks) < 2 {
		t.Fatalf("v4 has %d chunks, want several", len(v4.chunks))
	}
	c.send("roster", v4, 1) // all but chunk 1
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s, ok, _ := st.StagedDataset("roster"); ok && s.Version == 4 && len(s.Missing) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("v4 never staged with one chunk missing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	v3 := c.dataset("roster", 3, rosterJSON(t, 3), key, device)
	c.publish(wire.DataTopic(synckit.Institution, device, "roster"), v3.manifest)
	c.publish(wire.DataTopic(synckit.Institution, device, "roster"), v4.chunks[1])
	if a := c.report(); a.Status != wire.StatusApplied || a.Version != 4 {
		t.Fatalf("report: %+v, want v4 applied", a)
	}
	if v := activeRoster(t, st); v != 4 {
		t.Fatalf("active roster %d, want 4", v)
	}
}
