package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kaoqin/kaoqin/sync/wire"
)

// evidence keeps one photo a device sent on up/evidence/{sha256} and acknowledges it on
// down/evack once it is durable (written, fsynced, renamed, folder fsynced). A photo whose bytes
// do not hash to its topic, or that is no JPEG, is refused and not acknowledged: the device keeps
// it and sends it again. A photo already kept is acknowledged again (the first ack may be lost).
func (in *Ingester) evidence(d *device, sha string, jpg []byte) {
	if err := in.keepEvidence(sha, jpg); err != nil {
		in.refuse(d, "evidence refused", err)
		return
	}
	p, err := (&wire.EvidenceAck{SHA256: sha}).Encode()
	if err != nil {
		in.log.Error("ingest: evidence ack", "err", err)
		return
	}
	in.conn.Publish(wire.EvidenceAckTopic(d.rec.Institution, d.name), 1, false, p)
}

func (in *Ingester) keepEvidence(sha string, jpg []byte) error {
	if in.cfg.EvidenceDir == "" {
		return errors.New("this ingester keeps no evidence (no evidence or datasets folder)")
	}
	if len(jpg) > wire.MaxPayload {
		return fmt.Errorf("photo of %d bytes, limit %d", len(jpg), wire.MaxPayload)
	}
	sum := sha256.Sum256(jpg)
	if got := hex.EncodeToString(sum[:]); got != sha {
		return fmt.Errorf("photo of %d bytes hashes to %s, its topic says %s", len(jpg), got, sha)
	}
	if !bytes.HasPrefix(jpg, []byte{0xff, 0xd8}) {
		return fmt.Errorf("photo %s is not a JPEG", sha)
	}
	dir := filepath.Join(in.cfg.EvidenceDir, sha[:2])
	path := filepath.Join(dir, sha+".jpg")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return writeAtomic(path, jpg)
}
