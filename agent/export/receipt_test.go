package export_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/sync/wire"
)

func TestCheckReceiptVerifiesTheCentralSignature(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	a := &wire.Ack{Device: "jn-0001-r101", Epoch: 7, AckedThrough: 12, Hash: wire.SHA256Hex([]byte("r12")), Time: time.Unix(100, 0).UTC()}
	raw, err := wire.SealAck(a, key)
	if err != nil {
		t.Fatal(err)
	}
	rc := export.Receipt{Device: a.Device, Epoch: 7, AckedSeq: 12, Hash: a.Hash, At: a.Time, Raw: raw}
	check := export.CheckReceipt(pub)
	if err := check(rc); err != nil {
		t.Fatalf("a receipt signed by the central key: got %v, want nil", err)
	}
	edited := rc
	edited.AckedSeq = 9 // an older seq claimed under the same signature
	if err := check(edited); err == nil || !strings.Contains(err.Error(), "seq 12") {
		t.Errorf("a receipt whose seq was edited: got %v, want a refusal naming the signed seq 12", err)
	}
	forged := rc
	forged.Raw, _ = wire.SealAck(a, other)
	if err := check(forged); !errors.Is(err, wire.ErrSignature) {
		t.Errorf("a receipt signed by another key: got %v, want wire.ErrSignature", err)
	}
	if err := check(export.Receipt{Device: a.Device, Epoch: 7, AckedSeq: 12, Hash: a.Hash}); err == nil {
		t.Error("a receipt without its signed acknowledgement: got nil, want a refusal")
	}
}
