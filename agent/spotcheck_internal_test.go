package agent

import (
	"testing"
	"time"
)

// drawTimes keeps every check inside the window and spreads them: no two runs plan the same.
func TestDrawTimes(t *testing.T) {
	from := time.Date(2026, 3, 2, 8, 10, 0, 0, time.UTC)
	to := from.Add(160 * time.Minute)
	var first time.Time
	same := 0
	for i := range 200 {
		ts := drawTimes(3, from, to)
		if len(ts) != 3 {
			t.Fatalf("got %d times, want 3", len(ts))
		}
		for j, x := range ts {
			if x.Before(from) || !x.Before(to) {
				t.Fatalf("time %v outside [%v, %v)", x, from, to)
			}
			if j > 0 && x.Before(ts[j-1]) {
				t.Fatalf("times not sorted: %v", ts)
			}
		}
		if i == 0 {
			first = ts[0]
		} else if ts[0].Equal(first) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("the first check fell at the same instant in %d of 199 plans, want none", same)
	}
	if ts := drawTimes(3, to, from); len(ts) != 0 {
		t.Errorf("an empty window: got %v, want no checks", ts)
	}
}
