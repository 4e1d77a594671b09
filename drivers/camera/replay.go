package camera

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// replay plays the JPEG files of a folder in name order, at most FPS a second, for demonstrations
// and tests. It is paced by its consumer: a slow one slows the replay and skips no file, so a demo
// sees every photo.
type replay struct {
	cfg    Config
	log    *slog.Logger
	files  []string
	i      int
	good   bool // a usable frame was found in this pass
	seq    uint64
	due    time.Time
	c      counters
	closed chan struct{}
	once   sync.Once
}

var _ Frames = (*replay)(nil)

func openReplay(cfg Config, log *slog.Logger) (*replay, error) {
	dir := string(cfg.Dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("camera: dir: %w", err)
	}
	var files []string
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".jpg" || ext == ".jpeg") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("camera: dir: no .jpg files in %s", dir)
	}
	slices.Sort(files)
	r := &replay{cfg: cfg, log: log, files: files, closed: make(chan struct{})}
	r.c.setState(drivers.StateOK, nil)
	return r, nil
}

// Next returns the next usable file's frame when it is due. After the last file it starts again
// (loop) or returns io.EOF; a whole pass without a usable file is an error.
func (r *replay) Next(ctx context.Context) (Frame, error) {
	for {
		if r.i == len(r.files) {
			if !r.good {
				err := fmt.Errorf("camera: dir: no usable frame in %s (%d files: corrupt or grey)", r.cfg.Dir, len(r.files))
				r.c.setState(drivers.StateDown, err)
				return Frame{}, err
			}
			if !r.cfg.Loop {
				return Frame{}, io.EOF
			}
			r.i, r.good = 0, false
		}
		if err := sleepUntil(ctx, r.closed, r.due); err != nil {
			return Frame{}, err
		}
		now := time.Now()
		name := r.files[r.i]
		r.i++
		r.seq++
		b, err := os.ReadFile(name)
		if err != nil {
			r.c.corrupt.Add(1)
			r.log.Debug("camera: replay file unreadable", "file", name, "err", err)
			continue
		}
		if len(b) > r.cfg.MaxFrameKiB<<10 {
			r.c.corrupt.Add(1)
			continue
		}
		w, h, v, _ := inspect(b, r.cfg.MinChroma)
		switch v {
		case frameCorrupt:
			r.c.corrupt.Add(1)
			continue
		case frameGray:
			r.c.gray.Add(1)
			continue
		}
		r.good = true
		r.due = now.Add(r.cfg.interval())
		r.c.delivered(now)
		return Frame{JPEG: b, At: now, Seq: r.seq, Width: w, Height: h}, nil
	}
}

func (r *replay) Health() Health { return r.c.health() }

func (r *replay) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}
