package face

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's CPU time (lock the goroutine to its thread first).
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// BenchmarkMatch10000: one face against a gallery of 10,000 trainees, all of them expected (the
// list is passed, as the daemon passes the session's), beside a bare loop computing all 10,000
// distances. The gallery is synthetic, built in memory for this benchmark only: the measuring
// set's descriptors with noise added. Target < 1 ms.
func BenchmarkMatch10000(b *testing.B) {
	faces := loadIdols(b)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 10000
	by := make(map[string][]Descriptor, n)
	ids := make([]string, 0, n)
	flat := make([]Descriptor, 0, n)
	for i := 0; i < n; i++ {
		d := faces[i%len(faces)].D
		for k := range d {
			d[k] += float32(rng.NormFloat64() * 0.01)
		}
		id := fmt.Sprintf("T%05d", i)
		by[id] = []Descriptor{d}
		ids = append(ids, id)
		flat = append(flat, d)
	}
	g := newGallery(Model{}, by)
	probes := make([]Descriptor, 64)
	for i := range probes {
		probes[i] = faces[rng.IntN(len(faces))].D
	}
	// Both sides are timed in this thread's CPU time: the machine is shared, and wall time would
	// count other processes' turns on the core.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var match, bare time.Duration
	var sink float64
	for i := 0; b.Loop(); i++ {
		q := &probes[i%len(probes)]
		t0 := threadCPU(b)
		m := g.Match(q, ids)
		t1 := threadCPU(b)
		best := 9.0
		for j := range flat {
			if d := Distance(q, &flat[j]); d < best {
				best = d
			}
		}
		bare += threadCPU(b) - t1
		match += t1 - t0
		sink += m.BestDist + best
	}
	_ = sink
	nb := float64(b.N)
	b.ReportMetric(float64(match.Microseconds())/nb, "match-us-cpu")
	b.ReportMetric(float64(bare.Microseconds())/nb, "bare-us-cpu")
	b.ReportMetric(match.Seconds()/bare.Seconds(), "ratio")
}
