package roster

import (
	"strings"
	"testing"
	"time"
)

func TestOperatorSecret(t *testing.T) {
	o, err := NewOperator("王老师", Teaching, "246810")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Verify("246810") || o.Verify("246811") || o.Verify("") {
		t.Fatal("Verify: want true only for the secret")
	}
	if !o.May(RightOverride) || o.May(RightCert) || o.May(RightEnrol) || o.May(RightImport) {
		t.Fatalf("a teaching account's rights: got override %v cert %v enrol %v import %v, want override only",
			o.May(RightOverride), o.May(RightCert), o.May(RightEnrol), o.May(RightImport))
	}
	r := &Roster{Version: 1, Operators: []Operator{o, {Name: "x", Role: "boss"}}}
	err = r.Validate(time.Now())
	if err == nil || !strings.Contains(err.Error(), `role "boss"`) || !strings.Contains(err.Error(), "argon2id hash") {
		t.Fatalf("a bad account: got %v, want the role and the hash named", err)
	}
}

func TestCheckSuccessor(t *testing.T) {
	now := time.Now()
	old := &Roster{Version: 1, Institutions: []Institution{{Code: "0001"}},
		Sessions: []Session{{ID: "S1", Class: "C1", Start: now.Add(-time.Hour), End: now.Add(time.Hour)},
			{ID: "S2", Class: "C2", Start: now.Add(24 * time.Hour), End: now.Add(26 * time.Hour)}},
		Trainees: []Trainee{{ID: "T1", Enrolments: []Enrolment{{Class: "C1"}}}, {ID: "T2", Enrolments: []Enrolment{{Class: "C2"}}}}}
	next := *old
	next.Version = 2
	if err := CheckSuccessor(old, &next, "0001", now); err != nil {
		t.Fatalf("the same roster again: %v", err)
	}
	if err := CheckSuccessor(old, &Roster{Version: 3}, "0001", now); err == nil || !strings.Contains(err.Error(), "no institution 0001") {
		t.Fatalf("no institution: got %v", err)
	}
	dropRunning := next
	dropRunning.Trainees = old.Trainees[1:]
	if err := CheckSuccessor(old, &dropRunning, "0001", now); err == nil || !strings.Contains(err.Error(), "session S1") {
		t.Fatalf("running session emptied: got %v, want S1 named", err)
	}
	dropLater := next
	dropLater.Trainees = old.Trainees[:1]
	if err := CheckSuccessor(old, &dropLater, "0001", now); err != nil {
		t.Fatalf("a session of tomorrow emptied: got %v, want it allowed", err)
	}
}
