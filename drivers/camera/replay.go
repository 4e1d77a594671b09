package camera

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
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
// sees every photo. Files wider than Width are scaled down (decoded, box-filtered, encoded with
// image/jpeg) once and kept, so a loop over large photos costs their decoding once.
type replay struct {
	cfg    Config
	log    *slog.Logger
	files  []string
	i      int
	good   bool // a usable frame was found in this pass
	seq    uint64
	cache  map[int]replayed // by file index: scaled frames and bad files, not re-read each loop
	cached int              // bytes of JPEG in cache
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
	r := &replay{cfg: cfg, log: log, files: files, cache: map[int]replayed{}, closed: make(chan struct{})}
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
		i := r.i
		r.i++
		r.seq++
		e, ok := r.cache[i]
		if !ok {
			e = r.load(r.files[i])
			if e.keep && r.cached+len(e.jpeg) <= maxReplayCache {
				r.cache[i] = e
				r.cached += len(e.jpeg)
			}
		}
		b, w, h, v := bytes.Clone(e.jpeg), e.w, e.h, e.v // the consumer owns its copy
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

// maxReplayCache bounds the bytes of scaled frames a replay keeps.
const maxReplayCache = 16 << 20

// replayed is one file as the replay delivers it.
type replayed struct {
	jpeg []byte
	w, h int
	v    verdict
	keep bool // worth caching: small, or the verdict alone
}

// load reads, checks and, if it is wider than width, scales down one file.
func (r *replay) load(name string) replayed {
	b, err := os.ReadFile(name)
	if err != nil || len(b) > r.cfg.MaxFrameKiB<<10 {
		r.log.Debug("camera: replay file unreadable or too large", "file", name, "err", err)
		return replayed{v: frameCorrupt}
	}
	img, w, h, v, err := inspectImage(b, r.cfg.MinChroma)
	if v != frameOK {
		r.log.Debug("camera: replay file skipped", "file", name, "err", err)
		return replayed{v: v, keep: true}
	}
	if r.cfg.Width > 0 && w > r.cfg.Width {
		if img == nil {
			img, err = jpeg.Decode(bytes.NewReader(b))
		}
		if err != nil {
			return replayed{v: frameCorrupt, keep: true}
		}
		if small, sw, sh, ok := shrinkJPEG(img, r.cfg.Width); ok {
			return replayed{jpeg: small, w: sw, h: sh, v: frameOK, keep: true}
		}
	}
	return replayed{jpeg: b, w: w, h: h, v: frameOK}
}

func (r *replay) Health() Health { return r.c.health() }

func (r *replay) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}
