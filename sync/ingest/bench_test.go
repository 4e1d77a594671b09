package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/ingest/fleet"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/pgtest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkCentral runs a province's mornings through mosquitto into two consumers sharing one
// PostgreSQL (durable: fsync on):
//
//   - the 8 o'clock wave: KAOQIN_BENCH_DEVICES connected devices (default 1,000) each record 30
//     sign-ins at random moments within KAOQIN_BENCH_WAVE seconds (default 20: the ten minutes,
//     compressed 30 times); reported as the p50 and p99 time from a batch's publication to the
//     ack that covers it;
//   - the morning after an outage: as many other devices reconnect at once, each with
//     KAOQIN_BENCH_BACKLOG events (default 200) recorded while offline; reported as the drain
//     time, events/s, and the database's size per event;
//   - the baseline: the same rows (read back from the events table) written into a copy of the
//     table by a bare COPY, in transactions of 1,000 rows, on the same database; the ratio is
//     the drain's events/s over the baseline's.
//
// Run it once (-benchtime 1x): one iteration is the whole morning.
func BenchmarkCentral(b *testing.B) {
	devices := envInt("KAOQIN_BENCH_DEVICES", 1000)
	backlog := envInt("KAOQIN_BENCH_BACKLOG", 200)
	wave := time.Duration(envInt("KAOQIN_BENCH_WAVE", 20)) * time.Second
	const perClass = 30
	for range b.N {
		env := synckit.NewEnv(b)
		level := slog.LevelWarn
		if os.Getenv("KAOQIN_BENCH_LOG") == "debug" { // each commit's size and time
			level = slog.LevelDebug
		}
		env.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		br := brokertest.Start(b, brokertest.Options{Extra: "max_connections -1\n"})
		db := pgtest.DB(b)
		central, err := ledger.LoadPublicKey(env.CentralPub)
		if err != nil {
			b.Fatal(err)
		}
		newFleet := func(prefix string) *fleet.Fleet {
			f, err := fleet.New(fleet.Config{Broker: br.URL(), Devices: devices, KeysDir: env.DeviceKeysDir, CentralPub: central, Prefix: prefix,
				BatchSize: 64, Window: 4, AckTimeout: 10 * time.Second}, env.Log)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
		day, after := newFleet("day"), newFleet("after")
		for i := range 2 {
			env.StartIngester(pgConfigB(env, fmt.Sprintf("c%d", i), br.URL(), db))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		load0 := loadavg()

		// The 8 o'clock wave: a normal day, every classroom connected.
		dayRun := synckit.Start(b, day.Run)
		for day.Totals().Connected < devices {
			time.Sleep(10 * time.Millisecond)
		}
		var wg sync.WaitGroup
		waveStart := time.Now()
		for _, d := range day.Devs {
			offs := make([]time.Duration, perClass)
			for i := range offs {
				offs[i] = time.Duration(rand.Int64N(int64(wave)))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				slicesSort(offs)
				for _, o := range offs {
					time.Sleep(time.Until(waveStart.Add(o)))
					d.Record(1, ledger.SignIn, time.Now())
				}
			}()
		}
		wg.Wait()
		if err := day.WaitAcked(ctx); err != nil {
			b.Fatal(err)
		}
		waveTook := time.Since(waveStart)
		lat := day.Latencies()
		dayRun.Stop()

		// The morning after an outage: another province's worth of classrooms reconnects at once,
		// each with a backlog.
		after.Record(backlog, ledger.SignIn)
		stopProfile := drainProfile(b)
		busy0, split0 := cpuTicks(), cpuSplit()
		start := time.Now()
		synckit.Start(b, after.Run)
		var connected time.Duration
		for connected == 0 && after.Totals().Acked < after.Totals().Head {
			if after.Totals().Connected == devices {
				connected = time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := after.WaitAcked(ctx); err != nil {
			b.Fatal(err)
		}
		drain := time.Since(start)
		busy := cpuTicks().busySince(busy0)
		split := cpuSplit().since(split0)
		stopProfile()
		tot := after.Totals()
		size, n := dbSize(b, db)
		if want := int64(tot.Head + day.Totals().Head); n != want {
			b.Fatalf("the database holds %d events, want %d", n, want)
		}

		// The baseline: the same rows, a bare COPY.
		bare := bareCopy(b, db)

		rate := float64(tot.Head) / drain.Seconds()
		b.ReportMetric(drain.Seconds(), "drain-s")
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(bare, "bare-events/s")
		b.ReportMetric(rate/bare, "ratio")
		b.ReportMetric(float64(size)/float64(n), "db-bytes/event")
		b.ReportMetric(float64(fleet.Quantile(lat, 0.5).Microseconds())/1000, "wave-p50-ms")
		b.ReportMetric(float64(fleet.Quantile(lat, 0.99).Microseconds())/1000, "wave-p99-ms")
		fmt.Printf("load average (1 min) at the start and the end: %s, %s\n", load0, loadavg())
		fmt.Printf("8 o'clock wave: %d sign-ins in %v (offered %.0f/s), %d batches: publish-to-ack p50 %v, p99 %v, max %v\n",
			devices*perClass, waveTook.Round(time.Millisecond), float64(devices*perClass)/wave.Seconds(), len(lat),
			fleet.Quantile(lat, 0.5), fleet.Quantile(lat, 0.99), fleet.Quantile(lat, 1))
		fmt.Printf("morning after: %d devices x %d events = %d in %v (%.0f events/s; every device connected after %v; %d resends, %d resyncs; the machine's cores %.0f%% busy); bare COPY %.0f events/s (ratio %.2f); %.0f bytes/event in the database\n",
			devices, backlog, tot.Head, drain.Round(time.Millisecond), rate, connected.Round(time.Millisecond), tot.Resends, tot.Resyncs, 100*busy, bare, rate/bare, float64(size)/float64(n))
		fmt.Printf("CPU time during the drain (%v on %d cores): this process (both consumers, the simulated devices) %.1f s, postgres %.1f s, mosquitto %.1f s, every other process %.1f s\n",
			drain.Round(time.Millisecond), runtime.NumCPU(), split["self"], split["postgres"], split["mosquitto"],
			busy*drain.Seconds()*float64(runtime.NumCPU())-split["self"]-split["postgres"]-split["mosquitto"])
		cancel()
	}
}

func slicesSort(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

func pgConfigB(env *synckit.Env, name, broker, db string) ingest.Config {
	c := env.IngestConfig(name, broker)
	c.DB, c.Socket, c.ShareGroup = db, env.Dir+"/"+name+".sock", "g"
	// Production timeouts: the test ones (2 s keepalive) drop connections on a loaded machine.
	c.GapTimeout = 2 * time.Second
	c.KeepAlive, c.PingTimeout, c.ConnectTimeout, c.WriteTimeout = 30*time.Second, 10*time.Second, 10*time.Second, 10*time.Second
	c.BackoffMin, c.BackoffMax = 200*time.Millisecond, 2*time.Second
	return c
}

// dbSize is the size of the event tables (heap, indexes, TOAST) and the number of events.
func dbSize(b *testing.B, db string) (int64, int64) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE events"); err != nil {
		b.Fatal(err)
	}
	var size, n int64
	err = conn.QueryRow(ctx, `SELECT pg_total_relation_size('events') + pg_total_relation_size('evidence') + pg_total_relation_size('chains'),
		(SELECT count(*) FROM events)`).Scan(&size, &n)
	if err != nil {
		b.Fatal(err)
	}
	return size, n
}

// bareCopy writes the rows of events into a new table of the same shape with COPY, 1,000 rows a
// transaction, and returns the rows per second.
func bareCopy(b *testing.B, db string) float64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	cols := []string{"device", "epoch", "seq", "institution", "kind", "trainee", "session", "method", "flags", "time", "record"}
	rows, err := conn.Query(ctx, "SELECT device, epoch, seq, institution, kind, trainee, session, method, flags, time, record FROM events ORDER BY received")
	if err != nil {
		b.Fatal(err)
	}
	var all [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, v)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE bare (LIKE events INCLUDING ALL)"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < len(all); i += 1000 {
		chunk := all[i:min(i+1000, len(all))]
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"bare"}, cols, pgx.CopyFromRows(chunk))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return float64(len(all)) / time.Since(start).Seconds()
}

// loadavg is the machine's 1-minute load average: the figures mean little on a machine other
// work keeps busy, and the report says how busy it was.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

// drainProfile writes a CPU profile of the morning after's drain alone (this process: the
// consumers and the simulated devices) to the file KAOQIN_BENCH_DRAIN_PROFILE names, if set (do
// not combine with -cpuprofile, which profiles the whole run).
func drainProfile(b *testing.B) (stop func()) {
	path := os.Getenv("KAOQIN_BENCH_DRAIN_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// ticks are the machine's CPU time counters (/proc/stat): busy and total, in clock ticks.
type ticks struct{ busy, total uint64 }

func cpuTicks() ticks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return ticks{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var t ticks
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseUint(f, 10, 64)
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// busySince is the fraction of the machine's CPU time that was busy since t0.
func (t ticks) busySince(t0 ticks) float64 {
	if t.total <= t0.total {
		return 0
	}
	return float64(t.busy-t0.busy) / float64(t.total-t0.total)
}

// cpuSplit is the CPU time (user and system, in seconds) of this process ("self") and of its
// descendants by command name (the test's postgres and mosquitto), read from /proc.
type cpuTimes map[string]float64

func cpuSplit() cpuTimes {
	const hz = 100 // USER_HZ
	type proc struct {
		ppid int
		comm string
		cpu  float64
	}
	procs := map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:i]))
		f := strings.Fields(s[j+1:]) // state ppid ... utime(12) stime(13)
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		procs[pid] = proc{ppid, s[i+1 : j], (ut + st) / hz}
	}
	self := os.Getpid()
	out := cpuTimes{}
	for pid, p := range procs {
		if pid == self {
			out["self"] += p.cpu
			continue
		}
		for a, n := p.ppid, 0; a > 1 && n < 10; a, n = procs[a].ppid, n+1 {
			if a == self {
				out[p.comm] += p.cpu
				break
			}
		}
	}
	return out
}

func (t cpuTimes) since(t0 cpuTimes) cpuTimes {
	out := cpuTimes{}
	for k, v := range t {
		out[k] = v - t0[k]
	}
	return out
}
