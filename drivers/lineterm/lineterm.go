// Package lineterm is the driver for line-protocol serial terminals: face-recognition terminals,
// Wiegand-to-serial converters and QR/barcode voucher scanners that print one line per event and
// never expect anything back.
//
// Data flows through four pure pieces before it becomes a drivers.Reading:
//
//  1. a Framer cuts the byte stream into lines (LF, CRLF, CR or STX...ETX), tolerating reads split
//     anywhere, garbage between lines, and overlong lines (discarded up to the next delimiter);
//  2. the line, trimmed of surrounding white space and control bytes, is matched against
//     Config.Pattern, whose named groups give the device ID (id), a score (score) and a
//     sign-in/sign-out word (kind);
//  3. with Config.Wiegand set, the id group is a raw Wiegand frame, decoded by Wiegand.Decode with
//     both parity checks into a Credential, whose String ("12:34567") is the device ID;
//  4. repeat suppression (Config.Repeat) and the roster mapping (Config.Map, Config.PassUnmapped)
//     turn the device ID into the reading's Subject.
//
// Open returns a *Terminal, a drivers.Source. It starts no goroutine: Next reads the port itself,
// waiting at most one read timeout per read, so cancellation and Close take effect within one read
// timeout.
//
// # Wiegand frames on a serial line
//
// Converters print the frame as received, first transmitted bit (the leading even-parity bit)
// first. Wiegand.Decode accepts the two forms converters use:
//
//   - a bit string of exactly 26 (or 34) characters '0' and '1', e.g.
//     "10000110010000111000001111" for facility 12, card 34567 in 26-bit format;
//   - the frame as a big-endian integer in hexadecimal, the first transmitted bit being bit 25
//     (or 33), optionally prefixed by "0x", 1 to 7 (or 9) digits, either case, e.g. "2190E0F" for
//     the same credential (leading zeros may be omitted; bits above the frame must be zero).
//
// The 26-bit format is H10301: even parity over bits 1-13, facility code in bits 2-9 (8 bits),
// card number in bits 10-25 (16 bits), odd parity over bits 14-26 (bits numbered from 1 in
// transmission order). The 34-bit format has a 16-bit facility code and a 16-bit card number, with
// even parity over the first 17 bits and odd parity over the last 17.
//
// # Hang-up
//
// A line terminal only writes to us, and on Linux a read that times out looks like a read from a
// line whose other end is gone: both return nothing. The difference is timing: a hung-up tty
// (a closed pseudo-terminal master, an unplugged USB adapter) returns end-of-file at once, an idle
// one after the read timeout (measured on a pty: about 1µs against 100ms or more). When a read
// returns nothing in less than half the read timeout, Next probes the line with a zero-length write,
// which fails with serialport.ErrHangup on a hung-up tty, and returns that error so the agent
// closes and reopens the source. A read already waiting when the line hangs up fails with EIO
// instead, which Next reports as serialport.ErrHangup too. A line that keeps returning nothing at once without failing the
// probe is reported as ErrNoWait rather than spun on.
//
// # Caveats
//
// A plain RS-232 line whose cable is pulled cannot be told from a quiet terminal: nothing here
// detects it. Repeat suppression and the drop counters live in the Terminal and start again at zero
// when the agent reopens the source.
package lineterm

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/serialport"
)

// Errors returned by this package. Next also returns errors wrapping serialport.ErrHangup (the
// other end of the line is gone) and the port's read errors; any error other than ctx's means the
// Terminal must be closed and opened again.
var (
	// ErrClosed is returned by Next after Close.
	ErrClosed = errors.New("lineterm: terminal closed")
	// ErrNoWait is returned by Next when reads keep returning nothing at once although the line
	// does not report a hang-up on write: the line is unusable, and spinning on it would burn a CPU.
	ErrNoWait = errors.New("lineterm: line returns end of file without waiting")
	// ErrFrame is returned by Wiegand.Decode for text that is not a frame of the configured length
	// in either representation.
	ErrFrame = errors.New("lineterm: wiegand: malformed frame")
	// ErrEvenParity is returned by Wiegand.Decode when the leading even-parity bit does not match
	// the first half of the data bits.
	ErrEvenParity = errors.New("lineterm: wiegand: even parity error")
	// ErrOddParity is returned by Wiegand.Decode when the trailing odd-parity bit does not match
	// the second half of the data bits.
	ErrOddParity = errors.New("lineterm: wiegand: odd parity error")
)

// Reasons a line is dropped; they end up in Health.LastErr, never returned by Next.
var (
	errNoMatch   = errors.New("lineterm: line does not match the pattern")
	errScore     = errors.New("lineterm: score is not a finite number")
	errDiscarded = errors.New("lineterm: overlong line or torn STX/ETX frame discarded")
	errRepeat    = errors.New("lineterm: repeat suppressed")
)

// Defaults applied to a zero Config field.
const (
	// DefaultPattern takes the whole trimmed line as the device ID (a voucher scanner, a
	// converter printing only the frame).
	DefaultPattern = `^(?P<id>.+)$`
	// DefaultMaxLine is the longest line kept, in bytes, without its delimiter.
	DefaultMaxLine = 256
	// MaxMaxLine bounds Config.MaxLine.
	MaxMaxLine = 64 << 10
)

// Framing is how a terminal delimits its lines.
type Framing int

// Framings. The zero value is LF.
const (
	LF     Framing = iota // each line ends with '\n'
	CRLF                  // each line ends with "\r\n"; a CR alone is part of the line
	CR                    // each line ends with '\r'
	STXETX                // each line is framed as STX (0x02) ... ETX (0x03); bytes between frames are ignored
)

const (
	stx = 0x02
	etx = 0x03
)

var framingNames = [...]string{LF: "lf", CRLF: "crlf", CR: "cr", STXETX: "stx/etx"}

// ParseFraming parses "lf", "crlf", "cr" or "stx/etx" (also "stxetx"), in any case.
func ParseFraming(s string) (Framing, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "lf":
		return LF, nil
	case "crlf":
		return CRLF, nil
	case "cr":
		return CR, nil
	case "stx/etx", "stxetx":
		return STXETX, nil
	}
	return 0, fmt.Errorf("lineterm: framing: %q is not one of lf, crlf, cr, stx/etx", s)
}

// String returns the name ParseFraming accepts.
func (f Framing) String() string {
	if f.valid() {
		return framingNames[f]
	}
	return fmt.Sprintf("Framing(%d)", int(f))
}

func (f Framing) valid() bool { return f >= LF && f <= STXETX }

// Append appends line to dst framed as a terminal would send it, and returns the extended slice.
func (f Framing) Append(dst, line []byte) []byte {
	switch f {
	case CRLF:
		return append(append(dst, line...), '\r', '\n')
	case CR:
		return append(append(dst, line...), '\r')
	case STXETX:
		return append(append(append(dst, stx), line...), etx)
	default:
		return append(append(dst, line...), '\n')
	}
}

// Delimiter reports whether b is a byte with a framing role under f.
func (f Framing) Delimiter(b byte) bool {
	switch f {
	case CRLF:
		return b == '\r' || b == '\n'
	case CR:
		return b == '\r'
	case STXETX:
		return b == stx || b == etx
	default:
		return b == '\n'
	}
}

// Config describes one line terminal. The zero value of every field but Port, Method and
// Map/PassUnmapped is a usable default; Validate checks it without touching the device.
type Config struct {
	// Port is the serial line; a pseudo-terminal path works too (the emulator's link).
	Port serialport.Config
	// Framing is how lines are delimited; zero is LF.
	Framing Framing
	// Pattern is a regular expression (Go RE2 syntax, unanchored: use ^...$ to match whole lines)
	// with a named group id, the device ID, and optional named groups score (a number, higher is
	// better) and kind (a word mapped through Kinds). Empty means DefaultPattern.
	Pattern string
	// Kinds maps the kind group, compared without regard to case, to an intent. A kind that is
	// empty or not in Kinds gives drivers.Auto. Nil means {"in": SignIn, "out": SignOut}.
	Kinds map[string]drivers.Intent
	// Wiegand, when not NoWiegand, makes the id group a raw Wiegand frame of that many bits; the
	// device ID is then the decoded Credential's String ("12:34567"). A frame failing a parity
	// check is dropped and counted.
	Wiegand Wiegand
	// MaxLine is the longest line kept, in bytes without the delimiter; a longer line is discarded
	// up to the next delimiter and counted. Zero means DefaultMaxLine.
	MaxLine int
	// Repeat suppresses a reading whose device ID was accepted less than Repeat ago (measured
	// from that accepted reading, so a card held on the reader yields one reading per Repeat).
	// Zero disables suppression.
	Repeat time.Duration
	// Method is what the terminal identifies by: drivers.Face, drivers.Card or drivers.Voucher.
	Method drivers.Method
	// Map maps device IDs to trainee IDs (for a voucher scanner: scanned codes to voucher codes).
	Map map[string]string
	// PassUnmapped makes a device ID not in Map the Subject unchanged. When false, such a reading
	// is reported as unidentified: empty Subject, Detail naming the device ID.
	PassUnmapped bool
}

// withDefaults returns c with every zero field that has a default set to it.
func (c Config) withDefaults() Config {
	if c.Pattern == "" {
		c.Pattern = DefaultPattern
	}
	if c.Kinds == nil {
		c.Kinds = map[string]drivers.Intent{"in": drivers.SignIn, "out": drivers.SignOut}
	}
	if c.MaxLine == 0 {
		c.MaxLine = DefaultMaxLine
	}
	return c
}

// Validate checks the config, pattern included, without touching the device. It returns every
// problem, each a *drivers.FieldError named by its config key ("pattern", "max_line").
func (c Config) Validate() error {
	if _, err := c.compile(); err != nil {
		return fmt.Errorf("lineterm: %w", err)
	}
	return nil
}

// compile validates c with its defaults applied and builds the line decoder. Its error joins a
// *drivers.FieldError for each problem; callers add the package prefix.
func (c Config) compile() (*decoder, error) {
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, drivers.Field(key, format, a...)) }
	if err := c.Port.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !c.Framing.valid() {
		bad("framing", "%d is not a known framing", int(c.Framing))
	}
	if !c.Wiegand.valid() {
		bad("wiegand", "%d is not one of 0 (none), 26, 34", int(c.Wiegand))
	}
	if c.MaxLine < 1 || c.MaxLine > MaxMaxLine {
		bad("max_line", "%d is outside 1..%d", c.MaxLine, MaxMaxLine)
	}
	if c.Repeat < 0 {
		bad("repeat", "%v is negative", c.Repeat)
	}
	switch c.Method {
	case drivers.Face, drivers.Card, drivers.Voucher:
	case "":
		bad("method", "required (face, card or voucher)")
	default:
		bad("method", "%q is not one of face, card, voucher", c.Method)
	}
	kinds := make(map[string]drivers.Intent, len(c.Kinds))
	for word, in := range c.Kinds {
		w := strings.ToLower(word)
		switch prev, dup := kinds[w]; {
		case w == "":
			bad("kinds", "empty word")
		case in != drivers.SignIn && in != drivers.SignOut && in != drivers.Auto:
			bad("kinds", "%q maps to %q, not one of in, out, or empty", word, in)
		case dup && prev != in:
			bad("kinds", "%q is given twice with different intents", w)
		}
		kinds[w] = in
	}
	mapping := make(map[string]string, len(c.Map)) // a copy: the caller may reuse its map
	for id, subject := range c.Map {
		switch {
		case id == "":
			bad("map", "empty device id")
		case subject == "":
			bad("map."+id, "maps to an empty subject")
		}
		mapping[id] = subject
	}
	if len(c.Map) == 0 && !c.PassUnmapped {
		bad("map", "empty while pass_unmapped is false: every reading would be unidentified")
	}
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		bad("pattern", "%v", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d := &decoder{
		re: re, id: -1, score: -1, kind: -1,
		kinds: kinds, wiegand: c.Wiegand, method: c.Method,
		mapping: mapping, passUnmapped: c.PassUnmapped,
		repeat: c.Repeat, last: make(map[string]time.Time),
	}
	for i, name := range re.SubexpNames() {
		var idx *int
		switch name {
		case "":
			continue
		case "id":
			idx = &d.id
		case "score":
			idx = &d.score
		case "kind":
			idx = &d.kind
		default:
			return nil, drivers.Field("pattern", "unknown named group %q (want id, score, kind)", name)
		}
		if *idx >= 0 {
			return nil, drivers.Field("pattern", "named group %q appears twice", name)
		}
		*idx = i
	}
	if d.id < 0 {
		return nil, drivers.Field("pattern", "%q has no named group id", c.Pattern)
	}
	return d, nil
}
