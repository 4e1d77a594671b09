// Package agent wires the classroom attendance daemon: it owns every goroutine and the shutdown
// order. Data flows one way: sources (drivers, found by kind in the drivers registry) produce
// readings; one decision loop turns each into an event (agent/checkin) and appends it to the
// ledger (agent/store), in groups, before anyone is told it is recorded; the uplink (sync/uplink)
// sends the ledger to the central system and hands back what the central system sends (datasets
// and commands, one seam: downlink.go). The local API (agent/api) on a unix socket feeds manual
// sign-ins into the same loop and serves the CLI through the ledger service (agent/ops), as the
// inspector's pages (agent/inspect) do.
//
// Files by concern: run.go is the daemon's life top to bottom (Run); decide.go the decision loop
// and group.go its group commit; sources.go the goroutine per device and the capabilities the
// agent asks sources for; api.go the local API's backend; downlink.go what arrives from the
// central system; config*.go the config.
package agent

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/checkin"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/sync/uplink"
)

// ManualSource is the source name of sign-ins entered through the local API (the override path).
const ManualSource = api.ManualSource

// Version is the agent's version, set by the build.
var Version = "dev"

// Agent is the daemon. Create it with New and run it with Run, once.
type Agent struct {
	cfg *Config
	log *slog.Logger
	key ed25519.PrivateKey

	st     *store.Store
	ops    *ops.Service
	roster atomic.Pointer[roster.Index]
	rules  checkin.Rules
	clock  clock.Source // the kernel's; a test's Fake through SetClock

	requests      chan request  // readings from sources and the API, to the decision loop
	rosterChanged chan struct{} // wakes the template sync
	health        sync.Map      // source name -> func() drivers.Health
	open          sync.Map      // source name -> drivers.Source while open (capabilities: template sync, enrolment, capture)
	tellers       sync.Map      // source name -> chan drivers.Verdict, for sources that show verdicts
	decided       chan struct{} // closed when the decision loop has taken its last request
	group         group         // the events decided and not yet committed: the decision loop's own (group.go)
	flying        *inflight     // the group being committed, if any: the decision loop's own
	commitErr     error         // the failed commit that stops the daemon: the decision loop's own
	lastDiskAlarm time.Time     // the last disk_full alarm recorded; the decision loop's own (record)
	timeState     atomic.Int32  // the decision loop's last assessment of the box's time: timeUnknown, timeTrusted, timeUntrusted

	// Spot checks (spotcheck.go); the maps are the decision loop's own.
	spotPlans   map[string]*spotPlan // by session: the checks still to come
	spotBusy    map[string]bool      // room cameras whose burst is in progress
	spotResults chan spotResult      // bursts back from the cameras' goroutines
	spotNow     chan struct{}        // the central system's spotcheck command

	centralTime chan uplink.CentralTime // the central's clock from its acks (centraltime.go)
}

// States of the box's time, as the decision loop last assessed it (checkin.History.Assess).
const (
	timeUnknown   int32 = iota // not assessed yet
	timeTrusted                // synchronised, or computed from the boot's time_anchor
	timeUntrusted              // readings wait for trusted time
)

// clockTrusted reports whether the box's time is trusted now, as the decision loop last assessed
// it: the kernel's synchronised clock not behind the last trusted time of the ledger, or the
// boot's anchor. Safe for concurrent use (drivers.Env.ClockTrusted).
func (a *Agent) clockTrusted() bool { return a.timeState.Load() == timeTrusted }

// request is a reading on its way to the decision loop.
type request struct {
	reading drivers.Reading
	reply   chan<- checkin.Outcome // nil for device readings
}

// New checks the key and prepares an agent; nothing is opened until Run.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	key, err := ledger.LoadPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("agent: device key (make one with `kaoqin keygen --out %s`): %w", filepath.Dir(cfg.Key), err)
	}
	return &Agent{
		cfg: cfg, log: log, key: key,
		rules:         cfg.rules(),
		clock:         clock.New(10 * time.Minute),
		requests:      make(chan request, maxGroup),
		rosterChanged: make(chan struct{}, 1),
		decided:       make(chan struct{}),
		spotPlans:     map[string]*spotPlan{},
		spotBusy:      map[string]bool{},
		spotResults:   make(chan spotResult, 4),
		spotNow:       make(chan struct{}, 1),
		centralTime:   make(chan uplink.CentralTime, 1),
	}, nil
}
