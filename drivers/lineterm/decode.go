package lineterm

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// decoder turns one framed line into a reading: pattern, Wiegand, repeat suppression, mapping.
// It is built by Config.compile and holds the repeat state, so it is not safe for concurrent use.
type decoder struct {
	re              *regexp.Regexp
	id, score, kind int // submatch indexes; -1 when the pattern lacks the group
	kinds           map[string]drivers.Intent
	wiegand         Wiegand
	method          drivers.Method
	mapping         map[string]string
	passUnmapped    bool
	repeat          time.Duration
	last            map[string]time.Time // device ID -> last accepted reading
	sweepAt         int                  // size of last at which to forget expired IDs
}

// trim removes the white space and control bytes that surround a line: a CR left by a CRLF device
// on an LF-framed line, NULs, the odd STX.
func trim(line string) string {
	return strings.TrimFunc(line, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// decode returns the reading for a line that arrived at at, or the reason it is dropped. The line
// must already be trimmed. The reading's Source is left to the caller.
func (d *decoder) decode(line string, at time.Time) (drivers.Reading, error) {
	m := d.re.FindStringSubmatchIndex(line)
	if m == nil || m[2*d.id] < 0 || m[2*d.id] == m[2*d.id+1] {
		return drivers.Reading{}, fmt.Errorf("%w: %q", errNoMatch, line)
	}
	group := func(i int) string {
		if i < 0 || m[2*i] < 0 {
			return ""
		}
		return line[m[2*i]:m[2*i+1]]
	}
	id := group(d.id)
	r := drivers.Reading{Method: d.method, At: at, Detail: line}
	if s := group(d.score); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return drivers.Reading{}, fmt.Errorf("%w: %q in %q", errScore, s, line)
		}
		r.Score = v
	}
	if k := group(d.kind); k != "" {
		r.Intent = d.kinds[strings.ToLower(k)]
	}
	if d.wiegand != NoWiegand {
		c, err := d.wiegand.Decode(id)
		if err != nil {
			return drivers.Reading{}, err
		}
		id = c.String()
	}
	if d.repeat > 0 {
		if last, ok := d.last[id]; ok && at.Sub(last) < d.repeat && !at.Before(last) {
			return drivers.Reading{}, fmt.Errorf("%w: %s within %v", errRepeat, id, d.repeat)
		}
		d.last[id] = at
		d.sweep(at)
	}
	switch subject, ok := d.mapping[id]; {
	case ok:
		r.Subject = subject
	case d.passUnmapped:
		r.Subject = id
	default:
		r.Detail = fmt.Sprintf("unmapped id %q: %s", id, line)
	}
	return r, nil
}

// sweep forgets device IDs last accepted more than one repeat window before at, once the table has
// doubled since the previous sweep, so memory stays proportional to the IDs seen per window.
func (d *decoder) sweep(at time.Time) {
	if len(d.last) < d.sweepAt {
		return
	}
	for id, t := range d.last {
		if at.Sub(t) >= d.repeat {
			delete(d.last, id)
		}
	}
	d.sweepAt = max(2*len(d.last), 64)
}
