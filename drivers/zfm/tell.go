package zfm

import (
	"context"
	"errors"

	"github.com/kaoqin/kaoqin/drivers"
)

var _ drivers.Teller = (*Reader)(nil)

// verdictLights are the LED ring's answers: blue for recorded, red for refused, purple while a
// voucher waits for its holder's finger.
var verdictLights = map[drivers.Verdict]Aura{
	drivers.Recorded:    {Control: AuraFlash, Speed: 40, Colour: AuraBlue, Times: 2},
	drivers.Refused:     {Control: AuraFlash, Speed: 20, Colour: AuraRed, Times: 4},
	drivers.Waiting:     {Control: AuraBreathe, Speed: 80, Colour: AuraPurple, Times: 0},
	drivers.NotRecorded: {Control: AuraOn, Colour: AuraRed},
}

// Tell shows a verdict on the module's LED ring (R50x). A module without one is told nothing and
// Tell returns nil: the answer is also on the agent's log and API.
func (r *Reader) Tell(ctx context.Context, v drivers.Verdict) error {
	a, ok := verdictLights[v]
	if !ok {
		return nil
	}
	err := r.mod.AuraLedConfig(ctx, a)
	if errors.Is(err, ErrUnsupported) {
		return nil
	}
	return err
}
