package e2e

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/sync/ingest"
	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synckit"
)

func TestDrainEndToEnd(t *testing.T) {
	env := synckit.NewEnv(t)
	b := brokertest.Start(t, brokertest.Options{Persistence: true})
	key := env.DeviceKey("jn-0001-r101")
	st := env.OpenStore("jn-0001-r101", key)
	defer st.Close()
	synckit.Append(t, st, 300)
	in, ingRun := env.StartIngester(env.IngestConfig("central", b.URL()))
	_, upRun := env.StartUplink(st, env.UplinkConfig("jn-0001-r101", b.URL()))
	synckit.Append(t, st, 200)
	synckit.WaitDrained(t, st, 30*time.Second)
	if err := synckit.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
	// The status is a snapshot the ingester's worker refreshes: wait for it to catch up.
	var s []ingest.DeviceStatus
	if !testkit.WaitFor(t, func() bool {
		s = in.Status()
		return len(s) == 1 && s[0].AckedThrough == 501 && s[0].Device == "jn-0001-r101"
	}, 10*time.Second) {
		t.Fatalf("ingester status: got %+v, want one device acked through 501", s)
	}
	if err := upRun.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ingRun.Stop(); err != nil {
		t.Fatal(err)
	}
}
