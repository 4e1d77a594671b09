package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// testHookBeforeSwap, if set, runs after a dataset is fully staged and before it is swapped in.
// Tests use it to kill the agent between staging and swap.
var testHookBeforeSwap func()

// downlink is the goroutine that stages datasets and runs commands. It resumes or expires what an
// earlier run left staged, then takes messages from the handler until ctx is done. Each message
// is acknowledged to the broker after the store has it.
func (u *Uplink) downlink(ctx context.Context) {
	pending := map[string]*wire.Applied{} // reports not yet published, by dataset
	u.recoverStaged(ctx, pending)
	tick := time.NewTicker(min(u.cfg.DatasetTimeout/4, 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-u.down:
			u.handleDown(ctx, m, pending)
			m.Ack()
		case <-tick.C:
			u.expireStaged(ctx, pending)
		case <-u.upDown:
		}
		for ds, a := range pending { // reports made while offline, or lost with a connection
			if u.conn.Up() && u.publishReport(ctx, a) == nil {
				delete(pending, ds)
			}
		}
	}
}

func (u *Uplink) handleDown(ctx context.Context, m mqtt.Message, pending map[string]*wire.Applied) {
	t, err := wire.ParseTopic(m.Topic())
	if err != nil {
		return // the handler checked it
	}
	switch t.Kind {
	case wire.KindCmd:
		u.command(m.Payload())
	case wire.KindData:
		d, err := wire.DecodeData(m.Payload())
		if err != nil {
			u.log.Warn("uplink: dataset message refused", "dataset", t.Arg, "reason", err)
			return
		}
		if d.Manifest != nil {
			u.manifest(ctx, pending, t.Arg, d.Manifest, m.Payload())
		} else {
			u.chunk(ctx, pending, t.Arg, d.Chunk)
		}
	}
}

// command runs a signed command.
func (u *Uplink) command(p []byte) {
	c, err := wire.DecodeCommand(p, u.central)
	if err != nil {
		u.log.Warn("uplink: command refused", "reason", err)
		return
	}
	if c.Device != u.cfg.Device {
		u.log.Warn("uplink: command for another device refused", "device", c.Device)
		return
	}
	ok, err := u.st.AcceptCommand(c.ID)
	if err != nil {
		u.log.Error("uplink: command", "err", err)
		return
	}
	if !ok {
		u.log.Warn("uplink: replayed command ignored", "id", c.ID, "cmd", c.Cmd)
		return
	}
	switch c.Cmd {
	case wire.CmdResync:
		if c.Epoch != u.epoch {
			u.log.Info("uplink: resync for another epoch ignored", "epoch", c.Epoch, "current", u.epoch)
			return
		}
		u.inbox.resync(c.FromSeq)
	default:
		if u.cfg.Downlink == nil {
			u.log.Info("uplink: command not supported by this agent", "cmd", c.Cmd, "id", c.ID)
			return
		}
		u.cfg.Downlink.Deliver(Delivery{Command: c})
	}
}

// claimed reads the dataset and version a manifest claims, without trusting it, to report a
// refusal.
func claimed(s *wire.Signed) (version uint64, sha string) {
	var m struct {
		Version uint64 `json:"version"`
		SHA256  string `json:"sha256"`
	}
	if json.Unmarshal(s.Body, &m) == nil {
		version = m.Version
		if (&wire.Applied{Dataset: "x", Version: 1, SHA256: m.SHA256, Status: wire.StatusApplied}).Check() == nil {
			sha = m.SHA256 // well-formed, so the refusal report is too
		}
	}
	return version, sha
}

// manifest verifies a manifest and stages it.
func (u *Uplink) manifest(ctx context.Context, pending map[string]*wire.Applied, dataset string, s *wire.Signed, raw []byte) {
	m, err := wire.OpenManifest(s, u.central)
	reason := ledger.DatasetInvalid
	switch {
	case errors.Is(err, wire.ErrSignature):
		reason = ledger.DatasetBadSignature
	case err != nil:
	case m.Dataset != dataset:
		err = fmt.Errorf("manifest of %q on the topic of %q", m.Dataset, dataset)
	case m.Device != u.cfg.Device:
		reason, err = ledger.DatasetWrongDevice, fmt.Errorf("manifest for device %q", m.Device)
	case dataset != store.RosterDataset && dataset != cert.BlocksDataset:
		reason, err = ledger.DatasetUnsupported, fmt.Errorf("dataset %q is not supported by this agent", dataset)
	case !m.Expires.IsZero() && time.Now().After(m.Expires):
		reason, err = ledger.DatasetExpired, fmt.Errorf("manifest expired %s", m.Expires.Format(time.RFC3339))
	}
	if err != nil {
		v, sha := claimed(s)
		u.refuse(ctx, pending, dataset, v, sha, reason, err)
		return
	}
	active, err := u.st.DatasetVersions()
	if err != nil {
		u.log.Error("uplink: dataset versions", "err", err)
		return
	}
	if m.Version < active[dataset] {
		// An older version, signed: a replay (the ingester sends only what a device lacks).
		u.refuse(ctx, pending, dataset, m.Version, m.SHA256, ledger.DatasetReplayed,
			fmt.Errorf("%w: version %d, active is %d", store.ErrNotNewer, m.Version, active[dataset]))
		return
	}
	if m.Version == active[dataset] {
		u.log.Info("uplink: dataset version already active; nothing to do", "dataset", dataset, "version", m.Version)
		if _, info, err := u.st.Roster(); err == nil && dataset == store.RosterDataset && info.SHA256 == m.SHA256 {
			u.report(ctx, pending, &wire.Applied{Dataset: dataset, Version: m.Version, SHA256: info.SHA256, Status: wire.StatusApplied})
		}
		return
	}
	if cur, ok, err := u.st.StagedDataset(dataset); err == nil && ok && cur.Version > m.Version {
		u.log.Info("uplink: older manifest ignored; a newer version is staged", "dataset", dataset, "version", m.Version, "staged", cur.Version)
		return
	}
	st, err := u.st.Stage(dataset, m.Version, raw, len(m.Chunks))
	if err != nil {
		u.log.Error("uplink: stage", "err", err)
		return
	}
	u.log.Info("uplink: dataset staged", "dataset", dataset, "version", m.Version, "chunks", len(m.Chunks), "missing", len(st.Missing))
	if st.Complete() {
		u.apply(ctx, pending, st)
	}
}

// openStaged verifies the manifest kept with a staging.
func (u *Uplink) openStaged(st store.Staged) (*wire.Manifest, error) {
	d, err := wire.DecodeData(st.Manifest)
	if err != nil {
		return nil, err
	}
	if d.Manifest == nil {
		return nil, errors.New("staged manifest is not a manifest")
	}
	return wire.OpenManifest(d.Manifest, u.central)
}

// chunk checks a chunk against the staged manifest and stages it.
func (u *Uplink) chunk(ctx context.Context, pending map[string]*wire.Applied, dataset string, c *wire.Chunk) {
	if c.Dataset != dataset {
		u.log.Warn("uplink: chunk on the wrong topic ignored", "topic_dataset", dataset, "dataset", c.Dataset)
		return
	}
	cur, ok, err := u.st.StagedDataset(dataset)
	if err != nil {
		u.log.Error("uplink: staged dataset", "err", err)
		return
	}
	if !ok || cur.Version != c.Version {
		u.log.Debug("uplink: chunk of a version not being staged ignored", "dataset", dataset, "version", c.Version)
		return
	}
	m, err := u.openStaged(cur)
	if err != nil {
		u.refuse(ctx, pending, dataset, cur.Version, "", ledger.DatasetBadSignature, fmt.Errorf("staged manifest: %w", err))
		return
	}
	if err := m.CheckChunk(c.Index, c.Data); err != nil {
		u.refuse(ctx, pending, dataset, cur.Version, m.SHA256, ledger.DatasetBadSignature, err)
		return
	}
	st, err := u.st.StageChunk(dataset, c.Version, c.Index, c.Data)
	if err != nil {
		u.log.Error("uplink: stage chunk", "err", err)
		return
	}
	if st.Complete() {
		u.apply(ctx, pending, st)
	}
}

// apply verifies a complete staging and applies it through the store's gate, which records the
// dataset event (applied or refused) in the same transaction.
func (u *Uplink) apply(ctx context.Context, pending map[string]*wire.Applied, st store.Staged) {
	if testHookBeforeSwap != nil {
		testHookBeforeSwap()
	}
	ref := ledger.DatasetRef{Name: st.Dataset, Version: st.Version, Origin: store.OriginDownlink}
	in := store.DatasetIn{Ref: ref, Time: ledger.Clock{Wall: time.Now()}, Unstage: true}
	m, err := u.openStaged(st)
	if err != nil {
		in.Refused, in.Why = ledger.DatasetBadSignature, fmt.Errorf("staged manifest: %w", err)
	} else {
		in.Ref.SHA256 = m.SHA256
		_, content, err := u.st.StagedContent(st.Dataset, st.Version)
		switch {
		case err != nil:
			u.log.Error("uplink: staged content", "dataset", st.Dataset, "err", err)
			return
		case m.CheckContent(content) != nil:
			in.Refused, in.Why = ledger.DatasetBadSignature, m.CheckContent(content)
		default:
			in.Content = content
		}
	}
	a, err := u.st.ApplyDataset(in)
	var de *store.DatasetError
	switch {
	case errors.As(err, &de):
		u.log.Warn("uplink: dataset refused; the active one stays", "dataset", st.Dataset, "version", st.Version, "reason", de.Reason, "err", de.Err, "seq", de.Event.Seq)
		if err := u.st.Discard(st.Dataset, st.Version); err != nil {
			u.log.Error("uplink: discard", "err", err)
		}
		if !errors.Is(err, store.ErrNotNewer) {
			u.report(ctx, pending, &wire.Applied{Dataset: st.Dataset, Version: st.Version, SHA256: in.Ref.SHA256, Status: wire.StatusRefused, Reason: de.Err.Error()})
		}
		return
	case err != nil:
		u.log.Error("uplink: apply dataset", "dataset", st.Dataset, "err", err)
		return
	}
	u.log.Info("uplink: dataset applied", "dataset", st.Dataset, "version", st.Version, "sha256", in.Ref.SHA256, "seq", a.Event.Seq)
	if u.cfg.Downlink != nil {
		d := Delivery{Dataset: st.Dataset, Version: st.Version, SHA256: in.Ref.SHA256}
		if a.Roster != nil {
			idx, err := roster.Build(a.Roster, time.Now())
			if err != nil {
				u.log.Error("uplink: applied roster does not index", "err", err) // it validated: cannot happen
			}
			d.Roster = idx
		}
		u.cfg.Downlink.Deliver(d)
	}
	u.report(ctx, pending, &wire.Applied{Dataset: st.Dataset, Version: st.Version, SHA256: in.Ref.SHA256, Status: wire.StatusApplied})
	select {
	case u.stateReq <- struct{}{}:
	default:
	}
}

// refuse drops a dataset version refused before it could be applied: the staging is discarded,
// the refusal recorded as a dataset event (reason, why) and reported. The active dataset stays.
func (u *Uplink) refuse(ctx context.Context, pending map[string]*wire.Applied, dataset string, version uint64, sha string, reason ledger.Reason, why error) {
	u.log.Warn("uplink: dataset refused; the active one stays", "dataset", dataset, "version", version, "reason", reason, "err", why)
	if version != 0 {
		if err := u.st.Discard(dataset, version); err != nil {
			u.log.Error("uplink: discard", "err", err)
		}
	}
	_, err := u.st.ApplyDataset(store.DatasetIn{Ref: ledger.DatasetRef{Name: dataset, Version: version, SHA256: sha, Origin: store.OriginDownlink},
		Refused: reason, Why: why, Time: ledger.Clock{Wall: time.Now()}})
	var de *store.DatasetError
	if err != nil && !errors.As(err, &de) {
		u.log.Error("uplink: recording a refused dataset", "err", err)
	}
	if version != 0 && reason != ledger.DatasetReplayed { // a replay is the central's old message, not news to it
		u.report(ctx, pending, &wire.Applied{Dataset: dataset, Version: version, SHA256: sha, Status: wire.StatusRefused, Reason: why.Error()})
	}
}

// report publishes an applied message, waiting at most a few seconds or until ctx is done (it
// runs on the downlink goroutine, never in a handler). A report that cannot be published now
// (offline, or the connection dropped) is kept in pending, the latest per dataset, and sent when
// the connection is up again.
func (u *Uplink) report(ctx context.Context, pending map[string]*wire.Applied, a *wire.Applied) {
	if err := u.publishReport(ctx, a); err != nil {
		u.log.Info("uplink: applied report kept for the next connection", "dataset", a.Dataset, "version", a.Version, "err", err)
		pending[a.Dataset] = a
		return
	}
	delete(pending, a.Dataset)
}

func (u *Uplink) publishReport(ctx context.Context, a *wire.Applied) error {
	p, err := a.Encode()
	if err != nil {
		u.log.Error("uplink: applied", "err", err)
		return nil // never publishable: drop it
	}
	return u.conn.PublishWait(ctx, u.appliedTopic, false, p, 5*time.Second)
}

// recoverStaged resumes what an earlier run left staged: a complete staging is swapped in now,
// an expired one is refused, and the rest waits for its missing chunks.
func (u *Uplink) recoverStaged(ctx context.Context, pending map[string]*wire.Applied) {
	all, err := u.st.StagedDatasets()
	if err != nil {
		u.log.Error("uplink: staged datasets", "err", err)
		return
	}
	for _, st := range all {
		switch {
		case st.Complete():
			u.log.Info("uplink: resuming a staged dataset", "dataset", st.Dataset, "version", st.Version)
			u.apply(ctx, pending, st)
		case time.Since(st.Since) > u.cfg.DatasetTimeout:
			u.refuse(ctx, pending, st.Dataset, st.Version, "", ledger.DatasetInvalid, fmt.Errorf("chunks %v missing after %v", st.Missing, time.Since(st.Since).Round(time.Second)))
		default:
			u.log.Info("uplink: staged dataset waits for chunks", "dataset", st.Dataset, "version", st.Version, "missing", len(st.Missing))
		}
	}
}

// expireStaged refuses stagings that stayed incomplete longer than DatasetTimeout.
func (u *Uplink) expireStaged(ctx context.Context, pending map[string]*wire.Applied) {
	all, err := u.st.StagedDatasets()
	if err != nil {
		u.log.Error("uplink: staged datasets", "err", err)
		return
	}
	for _, st := range all {
		if !st.Complete() && time.Since(st.Since) > u.cfg.DatasetTimeout {
			u.refuse(ctx, pending, st.Dataset, st.Version, "", ledger.DatasetInvalid, fmt.Errorf("chunks %v missing after %v", st.Missing, u.cfg.DatasetTimeout))
		}
	}
}
