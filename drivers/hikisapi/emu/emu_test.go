package emu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
)

func TestParseScript(t *testing.T) {
	steps, err := emu.ParseScript(strings.NewReader("# a classroom morning\n0s face T001 张三\n1s card T002\n2s stranger # nobody\n3s cut 20s\n4s clock +10m\n5s midpart\n6s replay 3\n7s finger T003\n8s door\n"))
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, s := range steps {
		verbs = append(verbs, s.Verb)
	}
	if got, want := strings.Join(verbs, " "), "face card stranger cut clock midpart replay finger door"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if steps[0].Args[1] != "张三" || steps[3].Offset != 3*time.Second {
		t.Errorf("got %+v, want the name and offsets kept", steps)
	}
	for _, bad := range []string{"face T001", "1s face", "2s\n1s door", "1s cut soon", "1s replay -1", "1s dance", "x door"} {
		if _, err := emu.ParseScript(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: got no error, want one", bad)
		}
	}
}

// Play logs the script's events; a cut keeps them in the log.
func TestPlay(t *testing.T) {
	term := emu.New(emu.Config{})
	steps, err := emu.ParseScript(strings.NewReader("0s face T001\n0s cut 1h\n0s card T002\n0s stranger\n0s door\n0s clock -2h\n0s finger T003\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := term.Play(context.Background(), steps); err != nil {
		t.Fatal(err)
	}
	evs := term.Events()
	if len(evs) != 5 || evs[0].Minor != emu.MinorFacePass || len(evs[0].Picture) == 0 || evs[4].Serial != 5 {
		t.Fatalf("got %+v, want 5 events, the first a face with a capture", evs)
	}
	if d := time.Since(evs[4].Time); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("after clock -2h: event %v from now, want 2h behind", d)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emu.Run(ctx, "127.0.0.1:0", emu.Config{}, strings.NewReader("0s card T001\n"), nil) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("got %v, want nil after cancel", err)
	}
}
