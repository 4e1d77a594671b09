package roster_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// FuzzRoster: any bytes given as a roster (a dataset from the network, a file an institution
// imports) are refused or accepted without a panic, and an accepted roster indexes every trainee.
func FuzzRoster(f *testing.F) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	good, _ := json.Marshal(demo.Roster(now, 3, 7))
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"trainees":[{"id":"T1","name":"x","id_number":"11010519491231002X"}]}`))
	f.Add([]byte(`{"version":2,"sessions":[{"id":"S","class":"C","late_after":"-5m"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := roster.Decode(b)
		if err != nil {
			return
		}
		x, err := roster.Build(r, now)
		if err != nil {
			if _, ok := err.(roster.Problems); !ok {
				t.Fatalf("Build refused with %T, want roster.Problems: %v", err, err)
			}
			return
		}
		for _, tr := range r.Trainees {
			if x.Trainee(tr.ID) == nil || x.TraineeByIDNumber(tr.IDNumber) == nil {
				t.Fatalf("accepted roster does not index trainee %q", tr.ID)
			}
		}
	})
}
