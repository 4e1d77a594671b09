package store

import (
	"errors"
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
	if err := s.SetInspectors([]Inspector{{Name: "wang"}}, InspectorsInfo{From: "local"}); err == nil {
		t.Error("an account without a hash was accepted")
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
