package ingest

import (
	"os"
	"testing"

	"github.com/kaoqin/kaoqin/sync/internal/pgtest"
)

// TestMain starts one PostgreSQL for the package's tests (each test gets its own database), and
// runs the child consumers of the kill tests.
func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	os.Exit(pgtest.Main(m, pgtest.Options{}))
}
