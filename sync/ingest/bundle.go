package ingest

import (
	"fmt"
	"os"
	"time"

	"github.com/kaoqin/kaoqin/agent/cert"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// DefaultBundleValidity is how long a bundle file stays valid when none is given.
const DefaultBundleValidity = 30 * 24 * time.Hour

// Bundle makes the signed bundle of a dataset file for one device, for a box the network does
// not reach (`kaoqin ingest publish --out`): the manifest the ingester would send on down/data,
// signed with the central key for that device, valid from now for valid, and the content. The
// content is checked as Publish checks it; certificate serial blocks must name the device.
// Nothing is published: the file is carried to the box and applied with `kaoqin roster import`.
func Bundle(cfg Config, name string, version uint64, file, device string, valid time.Duration, now time.Time) ([]byte, error) {
	if err := wire.CheckDataset(name); err != nil {
		return nil, fmt.Errorf("ingest: bundle: %w", err)
	}
	if err := wire.CheckName(device); err != nil {
		return nil, fmt.Errorf("ingest: bundle: device: %w", err)
	}
	if valid <= 0 {
		valid = DefaultBundleValidity
	}
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ingest: bundle: %w", err)
	}
	if len(content) > wire.MaxDatasetSize {
		return nil, fmt.Errorf("ingest: bundle: %s is %d bytes, limit %d", file, len(content), wire.MaxDatasetSize)
	}
	var own uint64
	switch name {
	case "roster":
		r, err := roster.Decode(content)
		if err != nil {
			return nil, fmt.Errorf("ingest: bundle %s: %w", file, err)
		}
		if err := r.Validate(now); err != nil {
			return nil, fmt.Errorf("ingest: bundle %s: %w", file, err)
		}
		own = r.Version
	case cert.BlocksDataset:
		bs, err := cert.DecodeBlocks(content)
		if err != nil {
			return nil, fmt.Errorf("ingest: bundle %s: %w", file, err)
		}
		if bs.Device != device {
			return nil, fmt.Errorf("ingest: bundle %s: the blocks are for device %q, not %q", file, bs.Device, device)
		}
		own = bs.Version
	}
	if version == 0 {
		version = own
	}
	if own != 0 && own != version {
		return nil, fmt.Errorf("ingest: bundle %s: the dataset says version %d, not %d", file, own, version)
	}
	if version == 0 {
		return nil, fmt.Errorf("ingest: bundle: a version (1 or more) is required for dataset %q", name)
	}
	key, err := ledger.LoadPrivateKey(cfg.CentralKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ingest: bundle: central key: %w", err)
	}
	m, _, err := wire.Split(name, version, device, content, wire.MaxChunkSize, now)
	if err != nil {
		return nil, fmt.Errorf("ingest: bundle: %w", err)
	}
	m.Expires = now.Add(valid)
	return wire.SealBundle(m, content, key)
}
