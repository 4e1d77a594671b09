package uplink

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/sync/wire"
)

// Evidence up: the photos the events name (face crops, frames) go to the central system on
// up/evidence/{sha256}, one JPEG a message, at low priority: only while every event is
// acknowledged, so a sign-in never waits behind a photo. The central system stores each photo and
// acks it by its SHA-256 on down/evack; the store remembers the ack (store.AckEvidence), and per
// epoch the seq through which every photo named by an event is acknowledged
// (store.EvidenceThrough), so a restart resumes where the acks stopped. A photo without an ack
// is never deleted (nothing here deletes anything); a photo is sent again when its ack does not
// come within AckTimeout or the connection comes back.

// evidenceWindow is how many photos may wait for their ack at once.
const evidenceWindow = 4

// evidenceScan is how many events one step reads looking for photos to send.
const evidenceScan = 256

// evSender is the evidence part of the sender's state.
type evSender struct {
	through uint64               // the store's EvidenceThrough, cached
	end     uint64               // the last seq of the range being sent (0: none)
	photos  []evPhoto            // photos of (through, end] not yet acknowledged, in seq order
	sent    map[string]time.Time // photos published and not yet acknowledged: when
	gen     uint64               // the connection generation the sends belong to
	loaded  bool
}

// evPhoto is a photo and the first event that names it.
type evPhoto struct {
	sha string
	seq uint64
}

// stepEvidence takes the evidence acks, then sends photos of acknowledged events while the window
// allows. Called by step only when every event is acknowledged.
func (u *Uplink) stepEvidence(s *sender, acks []string, now time.Time) error {
	ev := &s.ev
	if !ev.loaded {
		t, err := u.st.EvidenceThrough()
		if err != nil {
			return fmt.Errorf("uplink: evidence: %w", err)
		}
		ev.through, ev.sent, ev.loaded = t, map[string]time.Time{}, true
	}
	for _, sha := range acks {
		if err := u.st.AckEvidence(sha); err != nil {
			return fmt.Errorf("uplink: evidence ack: %w", err)
		}
		delete(ev.sent, sha)
		u.stats.evidenceAcks.Add(1)
	}
	if ev.gen != s.gen { // reconnected: what was in flight may be lost
		ev.gen, ev.sent = s.gen, map[string]time.Time{}
	}
	for range 8 { // a few ranges a step at most, so acks and events are looked at again soon
		if ev.end == 0 {
			if ev.through >= s.acked {
				return nil
			}
			if err := u.loadEvidence(ev, min(ev.through+evidenceScan, s.acked)); err != nil {
				return err
			}
		}
		left := ev.photos[:0]
		for _, p := range ev.photos {
			ok, err := u.st.EvidenceAcked(p.sha)
			if err != nil {
				return fmt.Errorf("uplink: evidence: %w", err)
			}
			if !ok {
				left = append(left, p)
			}
		}
		ev.photos = left
		// The cursor moves to the event before the first photo still unacknowledged.
		through := ev.end
		if len(ev.photos) > 0 {
			through = ev.photos[0].seq - 1
		}
		if through > ev.through {
			if err := u.st.SetEvidenceThrough(through); err != nil {
				return fmt.Errorf("uplink: evidence: %w", err)
			}
			ev.through = through
		}
		if len(ev.photos) > 0 {
			break
		}
		ev.end = 0
	}
	for _, p := range ev.photos {
		sha := p.sha
		at, ok := ev.sent[sha]
		if ok && now.Sub(at) < u.cfg.AckTimeout {
			continue
		}
		if !ok && len(ev.sent) >= evidenceWindow { // a photo whose ack is late is sent again in its own place
			break
		}
		jpg, err := os.ReadFile(u.st.EvidencePath(sha))
		if err != nil {
			// An event names a photo the box no longer has: nothing to send, ever. Said loudly;
			// the central system sees the reference without the photo.
			u.log.Error("uplink: evidence named by an event is missing; not sent", "sha256", sha, "err", err)
			if errors.Is(err, os.ErrNotExist) {
				if err := u.st.AckEvidence(sha); err != nil { // never asked again
					return fmt.Errorf("uplink: evidence: %w", err)
				}
			}
			continue
		}
		u.conn.Publish(wire.EvidenceTopic(u.cfg.Institution, u.cfg.Device, sha), 1, false, jpg)
		ev.sent[sha] = now
		u.stats.evidenceSent.Add(1)
	}
	return nil
}

// loadEvidence reads the events (ev.through, end] and keeps the photos they name.
func (u *Uplink) loadEvidence(ev *evSender, end uint64) error {
	recs, err := u.st.Range(ev.through+1, int(end-ev.through))
	if err != nil {
		return fmt.Errorf("uplink: evidence: %w", err)
	}
	seen := map[string]bool{}
	ev.photos = ev.photos[:0]
	for _, r := range recs {
		e, err := r.Record.Event()
		if err != nil {
			return fmt.Errorf("uplink: evidence: seq %d: %w", r.Seq, err)
		}
		for _, p := range e.Evidence {
			if !seen[p.SHA256] {
				seen[p.SHA256] = true
				ev.photos = append(ev.photos, evPhoto{p.SHA256, r.Seq})
			}
		}
	}
	ev.end = end
	return nil
}
