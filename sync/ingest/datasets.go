package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kaoqin/kaoqin/agent/roster"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// dataset is the highest published version of one dataset.
type dataset struct {
	name    string
	version uint64
	content []byte
	sha     string
}

// Publish publishes version of a dataset from file: it checks the content (a roster is decoded
// strictly and validated, and its own version must be version, or version 0 takes it), writes it
// to DatasetDir/<dataset>/<version> (atomically: temporary file, fsync, rename), and asks a
// running ingester to send it. A version that is not above the highest published one is refused,
// except the same content again. With no ingester running, the ingester sends it when it starts.
// Each device gets it with a manifest signed for that device, when its state reports an older
// version.
func Publish(ctx context.Context, cfg Config, name string, version uint64, file string) error {
	if errs := cfg.check(false); len(errs) > 0 {
		return fmt.Errorf("ingest: config: %w", errors.Join(errs...))
	}
	cfg = cfg.withDefaults()
	if err := wire.CheckDataset(name); err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	content, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	if len(content) > wire.MaxDatasetSize {
		return fmt.Errorf("ingest: publish: %s is %d bytes, limit %d", file, len(content), wire.MaxDatasetSize)
	}
	if name == "roster" {
		r, err := roster.Decode(content)
		if err != nil {
			return fmt.Errorf("ingest: publish %s: %w", file, err)
		}
		if err := r.Validate(time.Now()); err != nil {
			return fmt.Errorf("ingest: publish %s: %w", file, err)
		}
		if version == 0 {
			version = r.Version
		}
		if r.Version != version {
			return fmt.Errorf("ingest: publish %s: the roster says version %d, not %d", file, r.Version, version)
		}
	}
	if version == 0 {
		return fmt.Errorf("ingest: publish: a version (1 or more) is required for dataset %q", name)
	}
	dir := filepath.Join(cfg.DatasetDir, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	latest, err := latestVersion(dir)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, strconv.FormatUint(version, 10))
	if old, err := os.ReadFile(path); err == nil {
		if !bytes.Equal(old, content) {
			return fmt.Errorf("ingest: publish: %s version %d is already published with other content; publish a new version", name, version)
		}
	} else if version <= latest {
		return fmt.Errorf("ingest: publish: %s version %d is not above the published version %d", name, version, latest)
	} else if err := writeAtomic(path, content); err != nil {
		return fmt.Errorf("ingest: publish: %w", err)
	}
	notifyReload(ctx, cfg.Socket) // a stopped ingester reads the directory when it starts
	return nil
}

// latestVersion is the highest version file in a dataset directory (0 if none).
func latestVersion(dir string) (uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	var latest uint64
	for _, e := range ents {
		if v, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && e.Type().IsRegular() {
			latest = max(latest, v)
		}
	}
	return latest, nil
}

// writeAtomic writes b to path durably: a temporary file in the same folder, synced, renamed over
// path, and the folder synced. A crash leaves the old file or the new one, never half of one.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadDatasets reads the highest version of every dataset in DatasetDir.
func (in *Ingester) loadDatasets(ctx context.Context) error {
	ents, err := os.ReadDir(in.cfg.DatasetDir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ingest: datasets: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || wire.CheckDataset(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(in.cfg.DatasetDir, e.Name())
		v, err := latestVersion(dir)
		if err != nil || v == 0 {
			continue
		}
		if cur := in.datasets[e.Name()]; cur != nil && cur.version == v {
			continue
		}
		content, err := os.ReadFile(filepath.Join(dir, strconv.FormatUint(v, 10)))
		if err != nil {
			return fmt.Errorf("ingest: datasets: %w", err)
		}
		ds := &dataset{name: e.Name(), version: v, content: content, sha: wire.SHA256Hex(content)}
		if err := in.st.dataset(ctx, ds); err != nil {
			return err
		}
		in.datasets[e.Name()] = ds
		in.log.Info("ingest: dataset published", "dataset", e.Name(), "version", v, "bytes", len(content))
	}
	return nil
}

// sendDatasets sends each dataset to every online device that reports an older version and did
// not get this version within ResendInterval.
func (in *Ingester) sendDatasets(now time.Time) {
	for _, ds := range in.datasets {
		for _, d := range in.devices {
			s := d.rec.State
			if s == nil || !s.Online || s.DatasetVersions[ds.name] >= ds.version {
				continue
			}
			if sent, ok := d.sent[ds.name]; ok && sent.version == ds.version && now.Sub(sent.at) < in.cfg.ResendInterval {
				continue
			}
			if err := in.sendDataset(d, ds, now); err != nil {
				in.log.Error("ingest: send dataset", "device", d.name, "dataset", ds.name, "err", err)
				continue
			}
			d.sent[ds.name] = sentDataset{ds.version, now}
			in.log.Info("ingest: dataset sent", "device", d.name, "dataset", ds.name, "version", ds.version,
				"device_has", s.DatasetVersions[ds.name])
		}
	}
}

// sendDataset publishes the signed manifest and then the chunks, without waiting for the broker.
func (in *Ingester) sendDataset(d *device, ds *dataset, now time.Time) error {
	m, chunks, err := wire.Split(ds.name, ds.version, d.name, ds.content, in.cfg.ChunkSize, now)
	if err != nil {
		return err
	}
	p, err := wire.SealManifest(m, in.key)
	if err != nil {
		return err
	}
	topic := wire.DataTopic(d.rec.Institution, d.name, ds.name)
	if err := in.conn.Publish(topic, 1, false, p).Error(); err != nil {
		return err
	}
	for i := range chunks {
		cp, err := chunks[i].Encode()
		if err != nil {
			return err
		}
		in.conn.Publish(topic, 1, false, cp)
	}
	return nil
}
