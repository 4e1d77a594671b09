package ingest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
)

// A device whose key is filed under its institution (<device_keys_dir>/<institution>/<device>.pub)
// is refused under any other institution's prefix from its very first message: the first message
// does not get to choose. (A key at the top of the folder registers the device under the
// institution of its first message: TestIngesterRefusesAnotherInstitutionsPrefix.)
func TestDeviceKeyFiledUnderItsInstitutionPinsIt(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{}) // no ACL: the ingester alone decides
	sentinel := newFakeDevice(t, env, b, "jn-0001-r101")
	const dev = "jn-0001-r102"
	d := newFakeDevice(t, env, b, dev)
	filed := filepath.Join(env.DeviceKeysDir, synckit.Institution, dev+".pub")
	if err := os.MkdirAll(filepath.Dir(filed), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(env.DeviceKeysDir, dev+".pub"), filed); err != nil {
		t.Fatal(err)
	}
	in, _ := env.StartIngester(env.IngestConfig("central", b.URL()))
	sentinel.online(in) // the ingester is subscribed; the filed device is not registered yet

	recs := d.run(8, 1, 5, ledger.ZeroHash)
	d.send("0002", 8, 1, recs[:3]) // its first message, well signed, under another institution
	d.send(synckit.Institution, 8, 1, recs[:3])
	d.wantAck("seqs 1-3 under 0002 (refused), then under 0001", 8, 3)
	waitStatus(t, in, "want the filed device registered under 0001", func(s []ingest.DeviceStatus) bool {
		for _, st := range s {
			if st.Device == dev {
				return st.Institution == synckit.Institution
			}
		}
		return false
	})
	if got := stored(t, in, dev); len(got[8]) != 3 {
		t.Fatalf("stored: %d records, want 3", len(got[8]))
	}
	d.send("0002", 8, 4, recs[3:])
	d.send(synckit.Institution, 8, 4, recs[3:])
	d.wantAck("seqs 4-5 under 0002 (refused), then under 0001", 8, 5)
}
