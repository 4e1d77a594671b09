package zkpush

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// SyncPersons queues the commands that make the terminal's users the roster's: DATA UPDATE
// USERINFO for each trainee whose voucher is valid now and who is not on the terminal under that
// name, DATA DELETE USERINFO for each user kaoqin put there who is no longer among them and for
// each trainee whose voucher has ended. The terminal takes them at its next polls; their results
// come back on /iclock/devicecmd. Face and fingerprint templates the terminal made stay on it:
// no command here touches them (deleting a user removes theirs, on the terminal's own terms).
// A trainee whose ID cannot be a PIN on this terminal is skipped and counted in the report.
func (t *Terminal) SyncPersons(ctx context.Context, ps []drivers.Person) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	now := time.Now()
	want := map[string]string{}
	ended := map[string]bool{}
	skipped := 0
	for _, p := range ps {
		pin, err := checkPIN(p.Trainee, t.cfg.AlnumPINs)
		if err != nil {
			skipped++
			continue
		}
		if (!p.ValidFrom.IsZero() && now.Before(p.ValidFrom)) || (!p.ValidUntil.IsZero() && !now.Before(p.ValidUntil)) {
			ended[pin] = true
			continue
		}
		want[pin] = cleanName(p.Name)
	}
	have, gone, err := t.q.users()
	if err != nil {
		return "", fmt.Errorf("zkpush: state: %w", err)
	}
	var cs []change
	for _, pin := range sortedKeys(want) {
		if name, ok := have[pin]; !ok || name != want[pin] {
			cs = append(cs, change{PIN: pin, Name: want[pin]})
		}
	}
	adds := len(cs)
	for _, pin := range sortedKeys(have) {
		if _, ok := want[pin]; !ok {
			cs = append(cs, change{PIN: pin, del: true})
		}
	}
	for _, pin := range sortedKeys(ended) {
		if _, ok := have[pin]; !ok && !gone[pin] {
			cs = append(cs, change{PIN: pin, del: true})
		}
	}
	if _, err := t.q.enqueue(cs, now); err != nil {
		return "", err
	}
	pending, sent, err := t.q.counts()
	if err != nil {
		return "", fmt.Errorf("zkpush: state: %w", err)
	}
	report := fmt.Sprintf("zkpush %s: %d trainees valid; queued %d adds and %d deletes; %d commands pending, %d sent",
		t.cfg.Serial, len(want), adds, len(cs)-adds, pending, sent)
	if skipped > 0 {
		report += fmt.Sprintf("; %d trainees skipped (their ID cannot be a PIN here)", skipped)
	}
	return report, nil
}

// cleanName keeps a name from breaking the command's TAB-separated record.
func cleanName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Commands lists the terminal's command queue: for tests and inspection.
func (t *Terminal) Commands() ([]CommandStatus, error) {
	qs, err := t.q.all()
	if err != nil {
		return nil, err
	}
	out := make([]CommandStatus, len(qs))
	for i, c := range qs {
		out[i] = CommandStatus{ID: c.ID, Text: c.Text, State: c.State, Return: c.Return, Tries: c.Tries}
	}
	return out, nil
}

// CommandStatus is one command of a terminal's queue.
type CommandStatus struct {
	ID     string
	Text   string
	State  string // pending, sent, done
	Return int    // the terminal's result once done (0 success)
	Tries  int
}
