package export

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/kaoqin/kaoqin/sync/wire"
)

// CheckReceipt returns a check for VerifyOptions.CheckReceipt that verifies a receipt with the
// central system's public key: Raw must be the signed down/ack the box received (wire.SealAck),
// its signature must verify with central, and it must name the receipt's device, epoch, seq and
// hash (so that neither the envelope nor the fields beside it were edited).
func CheckReceipt(central ed25519.PublicKey) func(Receipt) error {
	return func(rc Receipt) error {
		if len(rc.Raw) == 0 {
			return errors.New("export: the receipt carries no signed acknowledgement")
		}
		a, err := wire.DecodeAck(rc.Raw, central)
		if err != nil {
			return fmt.Errorf("export: receipt: %w", err)
		}
		if a.Device != rc.Device || a.Epoch != rc.Epoch || a.AckedThrough != rc.AckedSeq || a.Hash != rc.Hash {
			return fmt.Errorf("export: the signed receipt says device %s epoch %d seq %d hash %.12s, the fields beside it device %s epoch %d seq %d hash %.12s",
				a.Device, a.Epoch, a.AckedThrough, a.Hash, rc.Device, rc.Epoch, rc.AckedSeq, rc.Hash)
		}
		return nil
	}
}
