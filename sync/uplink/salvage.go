package uplink

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/kaoqin/kaoqin/sync/wire"
)

// Salvaged events up. When the ledger file is found damaged the box starts a new epoch and keeps
// the old epoch's records that still verify (store.SalvagedRecords: seqs 1..n, linked). The
// central system holds that epoch up to where its acks had reached, perhaps not the tail the box
// recorded before the damage: those records would otherwise never leave the box. Once every
// event of the current epoch is acknowledged, the salvaged records are sent as batches of their
// own epoch, one batch at a time, from the first the central has not acknowledged. The central
// system stores each as it stores any batch (a record it holds is a duplicate, one that chains on
// from its end is stored) and acks that epoch's end; the box keeps the cursor per epoch
// (store.AckSalvaged) and stops once the central holds them all. An ack whose hash is not the
// salvaged record's at its seq means the central holds another chain for the epoch (it raises
// its own integrity alarm on the first record that differs): the box logs it and stops sending
// that epoch.

// salvSender is the salvage part of the sender's state.
type salvSender struct {
	loaded bool
	epochs []salvEpoch // salvaged epochs the central does not hold whole yet, oldest first
	flying *flight     // the batch sent and not yet answered
	epoch  uint64      // the epoch of flying
	gen    uint64      // the connection generation flying was sent on
}

type salvEpoch struct {
	epoch, last, acked uint64
}

// stepSalvage sends the next salvaged batch when none is waiting for its ack. Called by step
// only when every event of the current epoch is acknowledged.
func (u *Uplink) stepSalvage(s *sender, now time.Time) error {
	sv := &s.salv
	if !sv.loaded {
		eps, err := u.st.SalvagedEpochs()
		if err != nil {
			return fmt.Errorf("uplink: salvaged events: %w", err)
		}
		for _, e := range eps {
			if e.Epoch != u.epoch && e.Acked < e.Last {
				sv.epochs = append(sv.epochs, salvEpoch{epoch: e.Epoch, last: e.Last, acked: e.Acked})
			}
		}
		sv.loaded = true
	}
	if sv.flying != nil && sv.gen == s.gen && now.Sub(sv.flying.at) < u.cfg.AckTimeout {
		return nil // its ack may still come
	}
	sv.flying = nil
	if len(sv.epochs) == 0 {
		return nil
	}
	e := sv.epochs[0]
	recs, err := u.st.SalvagedRange(e.epoch, e.acked+1, u.cfg.BatchSize)
	if err != nil {
		return fmt.Errorf("uplink: salvaged events: %w", err)
	}
	b := wire.Batch{Device: u.cfg.Device, Epoch: e.epoch, FirstSeq: e.acked + 1}
	size := 0
	for i, r := range recs {
		if r.Seq != b.FirstSeq+uint64(i) || (i > 0 && size+len(r.Record) > u.cfg.BatchBytes) {
			break
		}
		size += len(r.Record)
		b.Events = append(b.Events, r.Record)
	}
	if len(b.Events) == 0 {
		u.log.Error("uplink: salvaged events missing from the store", "epoch", e.epoch, "from_seq", b.FirstSeq, "last", e.last)
		sv.epochs = sv.epochs[1:]
		return nil
	}
	b.LastSeq = b.FirstSeq + uint64(len(b.Events)) - 1
	p, err := b.Encode()
	if err != nil {
		return fmt.Errorf("uplink: encode salvaged batch %d..%d of epoch %d: %w", b.FirstSeq, b.LastSeq, e.epoch, err)
	}
	u.conn.Publish(u.eventsTopic, 1, false, p)
	sv.flying, sv.epoch, sv.gen = &flight{first: b.FirstSeq, last: b.LastSeq, at: now}, e.epoch, s.gen
	u.stats.batches.Add(1)
	u.log.Debug("uplink: salvaged events sent", "epoch", e.epoch, "first_seq", b.FirstSeq, "last_seq", b.LastSeq)
	return nil
}

// takeSalvageAck applies an ack of a salvaged epoch; it reports false for an ack of an epoch the
// box has no salvaged records of (a stale ack).
func (u *Uplink) takeSalvageAck(s *sender, a wire.Ack) (bool, error) {
	sv := &s.salv
	i := -1
	for j, e := range sv.epochs {
		if e.epoch == a.Epoch {
			i = j
		}
	}
	if i < 0 {
		return false, nil
	}
	e := &sv.epochs[i]
	if sv.flying != nil && sv.epoch == a.Epoch {
		sv.flying = nil // answered: the next batch starts after what the central holds
	}
	if a.AckedThrough <= e.acked {
		return true, nil
	}
	if a.AckedThrough <= e.last {
		recs, err := u.st.SalvagedRange(e.epoch, a.AckedThrough, 1)
		if err != nil {
			return true, fmt.Errorf("uplink: salvaged events: %w", err)
		}
		if len(recs) == 1 && recs[0].Seq == a.AckedThrough {
			if h := recs[0].Record.Hash(); hex.EncodeToString(h[:]) != a.Hash {
				sv.epochs = append(sv.epochs[:i], sv.epochs[i+1:]...)
				u.log.Error("uplink: the central system holds another chain for a salvaged epoch; it is not sent further",
					"epoch", a.Epoch, "seq", a.AckedThrough, "central_hash", a.Hash, "salvaged_hash", hex.EncodeToString(h[:]))
				return true, nil
			}
		}
	}
	e.acked = min(a.AckedThrough, e.last)
	if err := u.st.AckSalvaged(e.epoch, e.acked); err != nil {
		return true, fmt.Errorf("uplink: salvaged events: %w", err)
	}
	if e.acked >= e.last {
		u.log.Info("uplink: the central system holds every salvaged event of an old epoch", "epoch", e.epoch, "through_seq", e.last)
		sv.epochs = append(sv.epochs[:i], sv.epochs[i+1:]...)
	}
	return true, nil
}
