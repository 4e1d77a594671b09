package store

import (
	"errors"
	"strings"
	"testing"
)

// Inspector accounts are replaced whole, survive a reopen, are readable read-only, and an
// account without a name or a hash is refused without touching the old set.
func TestInspectors(t *testing.T) {
	cfg := testConfig(t)
	s := open(t, cfg)
	if list, info, err := s.Inspectors(); err != nil || len(list) != 0 || info.From != "" {
		t.Fatalf("a new store: got %v %+v %v, want no accounts", list, info, err)
	}
	want := []Inspector{{Name: "zhang", Role: "inspector", Hash: "$argon2id$x"}, {Name: "li", Role: "supervisor", Hash: "$argon2id$y"}}
	if err := s.SetInspectors(want, InspectorsInfo{Version: 3, From: "central"}); err != nil {
		t.Fatal(err)
	}
	// The refusal names the account by its place in the list, counted from 1 as an operator reads it.
	bad := []Inspector{want[0], {Name: "wang"}, {Hash: "$argon2id$z"}}
	if err := s.SetInspectors(bad, InspectorsInfo{From: "local"}); err == nil || !strings.Contains(err.Error(), "inspector 2:") {
		t.Errorf("the second account without a hash: got %v, want it refused naming inspector 2", err)
	}
	s.Close()
	ro, err := OpenReadOnly(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	list, info, err := ro.Inspectors()
	if err != nil || len(list) != 2 || list[1] != want[1] || info.Version != 3 || info.From != "central" || info.Applied.IsZero() {
		t.Errorf("after a reopen: got %v %+v %v, want the two accounts of version 3 from central", list, info, err)
	}
	if err := ro.SetInspectors(want, InspectorsInfo{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("set on a read-only store: got %v, want ErrReadOnly", err)
	}
}
