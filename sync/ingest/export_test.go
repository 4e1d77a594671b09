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
