package zkpush_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/zkpush"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// TestMain doubles as the pollers' process of BenchmarkPolling20: the terminals' side runs in a
// child process so that the parent's CPU time is the server's alone.
func TestMain(m *testing.M) {
	if addr := os.Getenv("ZKPUSH_BENCH_POLLERS"); addr != "" {
		os.Exit(runPollers(addr))
	}
	os.Exit(m.Run())
}

const (
	pollers      = 20
	pollInterval = 2 * time.Second
	pollWindow   = 20 * time.Second
)

func runPollers(addr string) int {
	ctx, cancel := context.WithTimeout(context.Background(), pollWindow)
	defer cancel()
	done := make(chan int, pollers)
	for i := range pollers {
		go func() {
			t := emu.New(emu.Config{Server: "http://" + addr, Serial: fmt.Sprintf("ZKP%02d", i)})
			if err := t.Boot(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
				done <- 1
				return
			}
			tick := time.NewTicker(pollInterval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					done <- 0
					return
				case <-tick.C:
					if err := t.Poll(ctx); err != nil && ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, err)
					}
				}
			}
		}()
	}
	rc := 0
	for range pollers {
		rc |= <-done
	}
	return rc
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPolling20 is the box's CPU cost of 20 terminals polling every 2 s, measured with
// getrusage over a 20 s window, beside the same server idle over an equal window. It reports
// the share of one core in both and their difference. Run it alone: -bench Polling20 -benchtime 1x.
func BenchmarkPolling20(b *testing.B) {
	var addr string
	for i := range pollers {
		r := openF(b, config(b, fmt.Sprintf("ZKP%02d", i), "127.0.0.1:0"))
		addr = r.term.Addr()
	}
	for b.Loop() {
		c0, w0 := cpuTime(), time.Now()
		time.Sleep(pollWindow)
		idle := float64(cpuTime()-c0) / float64(time.Since(w0))

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "ZKPUSH_BENCH_POLLERS="+addr)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		c0, w0 = cpuTime(), time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("pollers: %v\n%s", err, stderr.String())
		}
		busy := float64(cpuTime()-c0) / float64(time.Since(w0))
		b.ReportMetric(idle*100, "idle-%core")
		b.ReportMetric(busy*100, "polling-%core")
		b.ReportMetric((busy-idle)*100, "cost-%core")
	}
}

// backlog makes n distinct ATTLOG lines starting at base.
func backlog(n int, base time.Time) []byte {
	var b bytes.Buffer
	for i := range n {
		b.WriteString(emu.Punch{PIN: strconv.Itoa(1000 + i%300), At: base.Add(time.Duration(i) * time.Second), Verify: 15}.Line())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkBacklog10k uploads a 10,000-line ATTLOG backlog (a week offline) over loopback HTTP
// and waits for "OK: 10000", each reading handed to a stand-in agent and acknowledged through
// Done. The baseline, measured in the same run, is the bare decoding of the same lines; the
// ratio is the driver's rate over it. (The agent-level ratio against the ledger's batched
// append rate is the agent's benchmark.)
func BenchmarkBacklog10k(b *testing.B) {
	const lines = 10000
	r := openF(b, config(b, "ZKBL", "127.0.0.1:0"))
	url := r.url + "/iclock/cdata?SN=ZKBL&table=ATTLOG&Stamp=1"
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, shanghai)

	// Baseline: decode the backlog's lines, no network, no agent.
	body := backlog(lines, base)
	const rounds = 20
	t0 := time.Now()
	for range rounds {
		for _, ln := range strings.Split(string(body), "\n") {
			if ln != "" {
				if _, err := zkpush.ParsePunch(ln, shanghai, false); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	parseRate := float64(rounds*lines) / time.Since(t0).Seconds()

	var spent time.Duration
	n := 0
	for b.Loop() {
		body := backlog(lines, base.Add(time.Duration(n)*lines*time.Second)) // new punches each time
		n++
		t0 := time.Now()
		code, reply := postB(b, url, body)
		spent += time.Since(t0)
		if code != 200 || reply != "OK: 10000" {
			b.Fatalf("got %d %q, want 200 \"OK: 10000\"", code, reply)
		}
	}
	rate := float64(n*lines) / spent.Seconds()
	b.ReportMetric(rate, "readings/s")
	b.ReportMetric(parseRate, "parse-lines/s")
	b.ReportMetric(rate/parseRate, "x-of-parse")
}

func postB(b *testing.B, url string, body []byte) (int, string) {
	b.Helper()
	resp, err := httpClient.Post(url, "text/plain", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.String()
}
