package store

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
)

// durableChild is set in the environment of the process TestAppendIsDurableBeforeItReturns runs
// under strace: the directory it writes its store in.
const durableChild = "KAOQIN_STORE_DURABLE_CHILD"

const durableAppends = 20

// TestAppendIsDurableBeforeItReturns runs this test binary again under strace, as a child that
// appends events, acknowledges them, appends a batch and stores evidence, and writes one line to its stdout after
// each call returns ("recorded 7"), the moment the agent tells the trainee. strace logs the
// child's system calls in the order they happen: every reply must come after an fdatasync or
// fsync of the database file that completed since the previous reply, and every evidence reply
// after an fsync of the file and of its directory. With bbolt's NoSync (or a commit that skipped
// the sync) the replies come with no sync before them and the test fails.
func TestAppendIsDurableBeforeItReturns(t *testing.T) {
	if dir := os.Getenv(durableChild); dir != "" {
		durableChildMain(t, dir)
		return
	}
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace is needed to watch the fsyncs (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "strace.txt")
	cmd := exec.Command(straceBin, "-f", "-y", "-s", "256", "-e", "trace=fdatasync,fsync,write", "-o", trace,
		os.Args[0], "-test.run", "^TestAppendIsDurableBeforeItReturns$", "-test.count", "1")
	cmd.Env = append(os.Environ(), durableChild+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child under strace: %v\n%s", err, out)
	}
	log, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "kaoqin.db")
	replies := syncsBeforeReplies(t, log, dbPath, filepath.Join(dir, "evidence"))
	if len(replies) != 2*durableAppends+2 {
		t.Fatalf("got %d replies in the trace, want %d (appends, acks, a batch and one evidence)\n%s", len(replies), 2*durableAppends+2, log)
	}
	for _, r := range replies {
		switch {
		case strings.HasPrefix(r.reply, "evidence"):
			if r.fileSyncs < 1 || r.dirSyncs < 1 {
				t.Errorf("%q: got %d fsyncs of the evidence file and %d of its directory before it, want at least 1 of each", r.reply, r.fileSyncs, r.dirSyncs)
			}
		case r.dbSyncs < 1:
			t.Errorf("%q: got %d syncs of %s since the previous reply, want at least 1", r.reply, r.dbSyncs, filepath.Base(dbPath))
		}
	}
}

// durableChildMain is the child: each write to stdout is one system call, after the call it
// reports has returned.
func durableChildMain(t *testing.T, dir string) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{Path: filepath.Join(dir, "kaoqin.db"), EvidenceDir: filepath.Join(dir, "evidence"),
		Device: "jn-0001-r101", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reply := func(format string, args ...any) {
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < durableAppends; i++ {
		e, err := s.Append(signIn("T1"))
		if err != nil {
			t.Fatal(err)
		}
		reply("recorded %d", e.Seq)
		if _, err := s.Ack(s.Epoch(), e.Seq); err != nil {
			t.Fatal(err)
		}
		reply("acked %d", e.Seq)
	}
	batch, err := s.AppendBatch([]ledger.Event{signIn("T2"), signIn("T3"), signIn("T4")})
	if err != nil {
		t.Fatal(err)
	}
	reply("recorded %d", batch[len(batch)-1].Seq)
	ref, err := s.PutEvidence(drivers.Crop, []byte("\xff\xd8 a face \xff\xd9"))
	if err != nil {
		t.Fatal(err)
	}
	reply("evidence %s", ref.SHA256)
}

type reply struct {
	reply                        string
	dbSyncs, fileSyncs, dirSyncs int
}

var (
	straceStart   = regexp.MustCompile(`^(\d+) +(fdatasync|fsync)\((\d+)<([^>]*)>`)
	straceResumed = regexp.MustCompile(`^(\d+) +<\.\.\. (fdatasync|fsync) resumed>.*= 0$`)
	straceDone    = regexp.MustCompile(`= 0$`)
	straceReply   = regexp.MustCompile(`^\d+ +write\(1<[^>]*>, "((?:recorded|acked|evidence) [0-9a-f]+)\\n"`)
)

// syncsBeforeReplies reads an strace -f -y log and counts, for each reply the child wrote, the
// syncs that completed since the previous reply: of the database file, of an evidence file and
// of an evidence directory. A call strace splits (unfinished, then resumed) counts when resumed.
func syncsBeforeReplies(t *testing.T, log []byte, dbPath, evidenceDir string) []reply {
	t.Helper()
	var out []reply
	var cur reply
	pending := map[string]string{} // pid -> path of a sync not yet finished
	count := func(path string) {
		switch {
		case path == dbPath:
			cur.dbSyncs++
		case strings.HasPrefix(path, evidenceDir+"/") && strings.Contains(filepath.Base(path), ".tmp-"):
			cur.fileSyncs++
		case strings.HasPrefix(path, evidenceDir+"/"):
			cur.dirSyncs++
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := straceStart.FindStringSubmatch(line); m != nil {
			if strings.Contains(line, "<unfinished ...>") {
				pending[m[1]] = m[4]
			} else if straceDone.MatchString(line) {
				count(m[4])
			}
			continue
		}
		if m := straceResumed.FindStringSubmatch(line); m != nil {
			if p, ok := pending[m[1]]; ok {
				count(p)
				delete(pending, m[1])
			}
			continue
		}
		if m := straceReply.FindStringSubmatch(line); m != nil {
			cur.reply = m[1]
			out = append(out, cur)
			cur = reply{}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
