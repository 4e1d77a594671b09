package e2e

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/sync/internal/brokertest"
	"github.com/kaoqin/kaoqin/sync/internal/synctest"
)

func TestDrainEndToEnd(t *testing.T) {
	env := synctest.NewEnv(t)
	b := synctest.Broker(t, brokertest.Options{Persistence: true})
	key := env.DeviceKey("jn-0001-r101")
	st := env.OpenStore("jn-0001-r101", key)
	defer st.Close()
	synctest.Append(t, st, 300)
	in, ingRun := env.StartIngester(env.IngestConfig("central", b.URL()))
	_, upRun := env.StartUplink(st, env.UplinkConfig("jn-0001-r101", b.URL()))
	synctest.Append(t, st, 200)
	synctest.WaitDrained(t, st, 30*time.Second)
	if err := synctest.Check(st, in.Scan); err != nil {
		t.Fatal(err)
	}
	if err := upRun.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ingRun.Stop(); err != nil {
		t.Fatal(err)
	}
	s := in.Status()
	if len(s) != 1 || s[0].AckedThrough != 501 || s[0].Device != "jn-0001-r101" {
		t.Fatalf("ingester status: got %+v, want one device acked through 501", s)
	}
}
