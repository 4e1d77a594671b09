package camera

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Open starts the camera cfg describes; cfg must have passed Validate. For the ffmpeg modes it
// checks that the program exists and starts it, without waiting for the camera (the watchdog
// keeps trying; Health says how it goes); a snapshot camera must answer one request; a folder
// must hold a .jpg file. log may be nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (Frames, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	password := ""
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(string(cfg.PasswordFile))
		if err != nil {
			return nil, fmt.Errorf("camera: password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	switch cfg.Mode {
	case Snapshot:
		return openSnapshot(ctx, cfg, password, log)
	case Dir:
		return openReplay(cfg, log)
	default:
		return openStream(cfg, password, log)
	}
}

// sleepUntil waits until t, ctx is done (its error) or closed is closed (ErrClosed).
func sleepUntil(ctx context.Context, closed <-chan struct{}, t time.Time) error {
	select {
	case <-closed:
		return ErrClosed
	default:
	}
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return ErrClosed
	case <-tm.C:
		return nil
	}
}
