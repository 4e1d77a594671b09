package ingest

import (
	"context"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// ScanDB calls fn for every record of the store at db (a bbolt path or a postgres:// URL).
func ScanDB(ctx context.Context, db string, fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
	st, err := openStore(ctx, db, true)
	if err != nil {
		return err
	}
	defer st.close()
	return st.scan(ctx, fn)
}

// SetInCommit sets a function run at each commit of records, before the store's transaction
// commits and so before any ack can leave: a test holds it to see that no ack leaves before the
// commit. Set it before Run.
func SetInCommit(in *Ingester, f func()) { in.st = heldStore{in.st, f} }

// WithDefaults is the configuration Run uses.
func WithDefaults(c Config) Config { return c.withDefaults() }

// heldStore runs hold before each commit that stores batches.
type heldStore struct {
	store
	hold func()
}

func (h heldStore) commit(ctx context.Context, w *write) ([]batchResult, error) {
	if len(w.batches) > 0 {
		h.hold()
	}
	return h.store.commit(ctx, w)
}
