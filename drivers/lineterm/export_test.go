package lineterm

import "time"

// SetClock replaces the clock that stamps readings (and so drives repeat suppression).
func SetClock(t *Terminal, now func() time.Time) { t.now = now }
