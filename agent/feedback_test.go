package agent_test

import (
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers/zfm"
)

// The person at the reader is told: the LED ring of an R50x module flashes blue once a sign-in
// is in the ledger, red for a refusal, and breathes purple while a voucher scanned at the same
// station waits for the holder's finger.
func TestVerdictsShowOnTheLEDRing(t *testing.T) {
	t.Parallel()
	h := start(t, options{roster: demoRoster(5)})
	led := func(want zfm.Aura, what string) {
		t.Helper()
		if !testkit.WaitFor(t, func() bool { return h.module.LED() == want }, 5*time.Second) {
			t.Errorf("LED ring after %s: got %+v, want %+v", what, h.module.LED(), want)
		}
	}
	h.touch(demo.Finger("T001"))
	led(zfm.Aura{Control: zfm.AuraFlash, Speed: 40, Colour: zfm.AuraBlue, Times: 2}, "a sign-in")
	h.touch("X999/left-thumb")
	led(zfm.Aura{Control: zfm.AuraFlash, Speed: 20, Colour: zfm.AuraRed, Times: 4}, "a refusal")
	h.scan(demo.RegistrationVoucher)
	led(zfm.Aura{Control: zfm.AuraBreathe, Speed: 80, Colour: zfm.AuraPurple}, "a voucher scan at the station")
	if err := h.stop(); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
}
