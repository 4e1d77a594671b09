package ingest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// publishChildEnv makes the test binary a process that publishes one dataset and says so on its
// stdout: TestPublishIsDurableBeforeItReturns runs it under strace.
const publishChildEnv = "KAOQIN_INGEST_PUBLISH_CHILD"

// runPublishChild publishes dataset "blocks" version 1 into the directory the environment names,
// then writes "published" to its stdout in one write (after Publish returned), if the environment
// asks for it.
func runPublishChild() bool {
	dir := os.Getenv(publishChildEnv)
	if dir == "" {
		return false
	}
	file := filepath.Join(dir, "blocks.bin")
	if err := os.WriteFile(file, []byte("the blocks of the central system"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "publish child:", err)
		os.Exit(2)
	}
	central, _, err := ledger.GenerateKeyFiles(filepath.Join(dir, "central"), "central")
	if err != nil {
		fmt.Fprintln(os.Stderr, "publish child:", err)
		os.Exit(2)
	}
	cfg := Config{DB: filepath.Join(dir, "ingest.db"), DatasetDir: filepath.Join(dir, "datasets"), CentralKeyFile: central, DeviceKeysDir: dir}
	if err := Publish(context.Background(), cfg, "blocks", 1, file); err != nil {
		fmt.Fprintln(os.Stderr, "publish child:", err)
		os.Exit(1)
	}
	os.Stdout.Write([]byte("published\n"))
	os.Exit(0)
	return true
}

var (
	straceCall    = regexp.MustCompile(`^(\d+) +(fsync|fdatasync|rename|renameat|renameat2)\((.*)`)
	straceResumed = regexp.MustCompile(`^(\d+) +<\.\.\. (fsync|fdatasync|rename|renameat|renameat2) resumed>.*= 0$`)
	stracePath    = regexp.MustCompile(`<([^>]*)>`)
)

// Publish says "published" only once the dataset's file is on the disk under its name: its bytes
// synced before the rename, and its directory synced after it (the rename itself is durable only
// then). The test runs a publishing child under strace and reads the order of the system calls
// that completed before the child's reply. A publish that skips the directory's sync, or syncs it
// before the rename, fails.
func TestPublishIsDurableBeforeItReturns(t *testing.T) {
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace is needed to watch the fsyncs (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "strace.txt")
	cmd := exec.Command(straceBin, "-f", "-y", "-s", "256", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,write", "-o", trace, os.Args[0])
	cmd.Env = append(os.Environ(), publishChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child under strace: %v\n%s", err, out)
	}
	log, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	dsDir := filepath.Join(dir, "datasets", "blocks")
	final := filepath.Join(dsDir, "1")
	// The calls that completed, in order, up to the reply.
	var done []string
	pending := map[string]string{} // pid -> the call not yet finished
	replied := false
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, `write(1<`) && strings.Contains(line, `"published\n"`) {
			replied = true
			break
		}
		if m := straceResumed.FindStringSubmatch(line); m != nil {
			if c, ok := pending[m[1]]; ok {
				done = append(done, c)
				delete(pending, m[1])
			}
			continue
		}
		m := straceCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var call string
		switch p := stracePath.FindAllStringSubmatch(m[3], -1); {
		case m[2] == "fsync" || m[2] == "fdatasync":
			if len(p) == 0 {
				continue
			}
			switch {
			case p[0][1] == dsDir:
				call = "sync directory"
			case strings.HasPrefix(p[0][1], filepath.Join(dsDir, ".tmp-")):
				call = "sync file"
			default:
				continue
			}
		case strings.Contains(m[3], `"`+final+`"`):
			call = "rename"
		default:
			continue
		}
		switch {
		case strings.HasSuffix(line, "= 0"):
			done = append(done, call)
		case strings.Contains(line, "<unfinished ...>"):
			pending[m[1]] = call
		}
	}
	if !replied {
		t.Fatalf("the child never said published:\n%s", log)
	}
	want := []string{"sync file", "rename", "sync directory"}
	i := 0
	for _, c := range done {
		if i < len(want) && c == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("calls completed before the reply: %v, want %v in that order\n%s", done, want, log)
	}
}
