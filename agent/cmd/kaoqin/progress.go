package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a progress line on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	label string
	on    bool
	last  time.Time
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) update(done, total uint64) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if total > 0 {
		const width = 30
		fill := int(width * done / total)
		fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %3d%%", p.label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, 100*done/total)
	} else {
		fmt.Fprintf(p.w, "\r%s %d events", p.label, done)
	}
}

func (p *progress) done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
