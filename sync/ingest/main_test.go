package ingest

import (
	"flag"
	"os"
	"testing"

	"github.com/kaoqin/kaoqin/sync/internal/pgtest"
)

// TestMain starts one PostgreSQL for the package's tests (each test gets its own database), and
// runs the child consumers of the kill tests and the publishing child of the durability test.
// Benchmarks get a durable server (fsync on, as in production); tests one without fsync (a crash
// of the server still loses no commit).
func TestMain(m *testing.M) {
	if runChild() || runPublishChild() {
		return
	}
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run()) // a fuzzing worker runs FuzzDecodeColumns only: no database
	}
	durable := false
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		durable = true
	}
	os.Exit(pgtest.Main(m, pgtest.Options{Durable: durable}))
}
