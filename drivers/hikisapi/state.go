package hikisapi

import (
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// state is what a terminal's source keeps across the agent's reopens: the credentials' standing
// (never retry a rejected password early), the event numbers already recorded (a replay is
// answered without a second reading), counters, and the faces it wrote. One per terminal address
// and user, for the life of the process.
type state struct {
	gate authGate

	mu          sync.Mutex
	health      drivers.Health
	opens       uint64
	lastContact time.Time
	clockOffset time.Duration // terminal minus box; valid when clockKnown
	clockKnown  bool
	clockAt     time.Time // the box's time of the last sample
	failures    uint64
	duplicates  uint64
	ignored     uint64
	faceDups    map[string]string // trainee -> what the terminal said, a fraud signal
	faces       map[string]string // trainee -> SHA-256 of the photo on the terminal
	recorded    map[uint64]struct{}
	inflight    map[uint64]chan struct{} // serials being delivered; closed when done
	order       []uint64                 // recorded serials, oldest first, to bound the set
	maxSerial   uint64                   // highest live serialNo seen
	lastEvent   time.Time
	noHistory   bool // the terminal answered notSupport to AcsEvent
}

const maxRemembered = 50000

var states = struct {
	sync.Mutex
	m map[string]*state
}{m: map[string]*state{}}

func stateFor(key string) *state {
	states.Lock()
	defer states.Unlock()
	s, ok := states.m[key]
	if !ok {
		s = &state{faceDups: map[string]string{}, faces: map[string]string{}, recorded: map[uint64]struct{}{},
			inflight: map[uint64]chan struct{}{}}
		s.health = drivers.Health{State: drivers.StateStarting, Since: time.Now()}
		states.m[key] = s
	}
	return s
}

// isRecorded reports whether serial was recorded.
func (s *state) isRecorded(serial uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.recorded[serial]
	return ok
}

func (s *state) markRecorded(serial uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recorded[serial]; ok {
		return
	}
	s.recorded[serial] = struct{}{}
	s.order = append(s.order, serial)
	if len(s.order) > maxRemembered {
		delete(s.recorded, s.order[0])
		s.order = s.order[1:]
	}
}

// setState moves the health state, keeping Since when it does not change.
func (s *state) setState(st drivers.State, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.health.State != st {
		s.health.State, s.health.Since = st, time.Now()
	}
	if lastErr != "" {
		s.health.LastErr = lastErr
	}
}

func (s *state) count(f func(s *state)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}
