package agent

import (
	"context"
	"time"
)

// DefaultEvidenceRetention is how long acknowledged photos are kept by default: 90 days.
const DefaultEvidenceRetention = 90 * 24 * time.Hour

// pruneEvery is how often acknowledged photos past the retention, or needed to relieve the
// evidence budget, are deleted.
const pruneEvery = time.Hour

// pruneEvidence deletes, every pruneEvery, the photos the central system has acknowledged and
// the box no longer needs (store.PruneEvidence): past [store] evidence_retention, or oldest first
// while the evidence budget presses. A photo without the central system's ack is never deleted;
// a full budget then refuses new captures loudly (the events are still recorded).
func (a *Agent) pruneEvidence(ctx context.Context) {
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, freed, err := a.st.PruneEvidence(time.Duration(a.cfg.Store.EvidenceRetention), time.Now())
		switch {
		case err != nil:
			a.log.Error("evidence prune failed", "err", err)
		case n > 0:
			a.log.Info("acknowledged evidence photos deleted", "photos", n, "bytes", freed)
		}
	}
}
