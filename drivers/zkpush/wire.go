package zkpush

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/kaoqin/kaoqin/drivers"
)

// The wire's own layouts.
const (
	punchLayout = "2006-01-02 15:04:05" // an ATTLOG line's time, the terminal's local time
	photoLayout = "20060102150405"      // the time in an ATTPHOTO file name
	maxPIN      = 24                    // the longest PIN accepted (firmware allow 9 to 24)
	maxFields   = 16                    // an ATTLOG line with more fields than this is refused
)

// Punch is one ATTLOG line: PIN, local time, status, verify mode, work code.
type Punch struct {
	PIN      string
	At       time.Time // the line's time read in the terminal's zone
	Status   int       // 0 check-in, 1 check-out, 2 break out, 3 break in, 4 overtime in, 5 overtime out
	Verify   int       // 1 fingerprint, 3 password, 4 card, 15 face, ... (varies by model)
	Workcode string
}

// ParsePunch decodes one ATTLOG line ("1452\t2026-03-02 08:01:28\t0\t15\t0\t0\t0"), reading its
// time in loc. The PIN must be digits (letters too when alnum is set), the line must have at least
// PIN, time, status and verify, and at most 16 fields.
func ParsePunch(line string, loc *time.Location, alnum bool) (Punch, error) {
	line = strings.TrimRight(line, "\r")
	f := strings.Split(line, "\t")
	if len(f) < 4 || len(f) > maxFields {
		return Punch{}, fmt.Errorf("zkpush: attlog: %d fields, want 4 to %d", len(f), maxFields)
	}
	var p Punch
	var err error
	if p.PIN, err = checkPIN(strings.TrimSpace(f[0]), alnum); err != nil {
		return Punch{}, err
	}
	if p.At, err = time.ParseInLocation(punchLayout, strings.TrimSpace(f[1]), loc); err != nil {
		return Punch{}, fmt.Errorf("zkpush: attlog: time %q is not YYYY-MM-DD HH:MM:SS", clip(f[1]))
	}
	if p.Status, err = smallInt(f[2]); err != nil {
		return Punch{}, fmt.Errorf("zkpush: attlog: status %q is not a small number", clip(f[2]))
	}
	if p.Verify, err = smallInt(f[3]); err != nil {
		return Punch{}, fmt.Errorf("zkpush: attlog: verify %q is not a small number", clip(f[3]))
	}
	if len(f) > 4 {
		p.Workcode = strings.TrimSpace(f[4])
	}
	return p, nil
}

// checkPIN refuses an empty, overlong or non-numeric PIN.
func checkPIN(pin string, alnum bool) (string, error) {
	if pin == "" || len(pin) > maxPIN {
		return "", fmt.Errorf("zkpush: pin %q: want 1 to %d characters", clip(pin), maxPIN)
	}
	for i := 0; i < len(pin); i++ {
		c := pin[i]
		digit := c >= '0' && c <= '9'
		letter := (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !digit && !(alnum && letter) {
			if alnum {
				return "", fmt.Errorf("zkpush: pin %q: want letters and digits", clip(pin))
			}
			return "", fmt.Errorf("zkpush: pin %q: want digits", clip(pin))
		}
	}
	return pin, nil
}

func smallInt(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 4 {
		return 0, errors.New("not a small number")
	}
	return strconv.Atoi(s)
}

// clip shortens a value quoted in an error, so a hostile line cannot flood the log.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// Key is the punch's identity for deduplication: the terminal resends whole batches and its
// records carry no id of their own.
func (p Punch) Key(serial string) string {
	return serial + "|" + p.PIN + "|" + p.At.Format(punchLayout) + "|" + strconv.Itoa(p.Status) + "|" + strconv.Itoa(p.Verify)
}

// Method maps the verify mode to a reading's method. A password (3), "any" (0) and modes this
// package does not know (palm, vein: they vary by model) map to drivers.Manual without an operator:
// a typed password proves nobody's presence, so the rules keep such a punch as a refusal
// (override incomplete) rather than a sign-in. The second value names the mode for the detail.
func Method(verify int) (drivers.Method, string) {
	switch verify {
	case 1:
		return drivers.Fingerprint, "fingerprint"
	case 15:
		return drivers.Face, "face"
	case 16:
		return drivers.Face, "face+fingerprint"
	case 18:
		return drivers.Face, "face+card"
	case 4:
		return drivers.Card, "card"
	case 3:
		return drivers.Manual, "password"
	case 0:
		return drivers.Manual, "any"
	}
	return drivers.Manual, "verify " + strconv.Itoa(verify)
}

// Intent maps the status key: check-in, break in and overtime in sign in; check-out, break out
// and overtime out sign out; anything else is left to the schedule.
func Intent(status int) drivers.Intent {
	switch status {
	case 0, 3, 4:
		return drivers.SignIn
	case 1, 2, 5:
		return drivers.SignOut
	}
	return drivers.Auto
}

// Photo is one ATTPHOTO upload: the capture of a punch.
type Photo struct {
	PIN  string
	At   time.Time // from the file name, in the terminal's zone
	Name string    // the file name as sent ("20260302080128-1452.jpg")
	JPEG []byte
}

// ParsePhoto decodes an ATTPHOTO body: "PIN=<time>-<pin>.jpg\nSN=..\nsize=..\nCMD=uploadphoto"
// then a separator (NUL on the protocol's firmware; a newline or "picture=" on others) and the
// JPEG bytes. The picture is found by its JPEG start marker after CMD=, and cut to size= when
// size is given and fits.
func ParsePhoto(body []byte, loc *time.Location, alnum bool) (Photo, error) {
	i := bytes.Index(body, []byte("CMD="))
	if i < 0 {
		return Photo{}, errors.New("zkpush: attphoto: no CMD= line")
	}
	head := string(body[:i])
	rest := body[i:]
	soi := bytes.Index(rest, []byte{0xFF, 0xD8, 0xFF})
	if soi < 0 || soi > 64 {
		return Photo{}, errors.New("zkpush: attphoto: no JPEG after the header")
	}
	pic := rest[soi:]
	var p Photo
	size := -1
	for _, ln := range strings.FieldsFunc(head, func(r rune) bool { return r == '\n' || r == '\r' || r == '\t' || r == 0 }) {
		k, v, ok := strings.Cut(ln, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "pin":
			p.Name = strings.TrimSpace(v)
		case "size":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 {
				return Photo{}, fmt.Errorf("zkpush: attphoto: size %q is not a byte count", clip(v))
			}
			size = n
		}
	}
	if p.Name == "" {
		return Photo{}, errors.New("zkpush: attphoto: no PIN= line")
	}
	if size > 0 {
		if size > len(pic) {
			return Photo{}, fmt.Errorf("zkpush: attphoto: size %d but %d bytes of picture (cut short)", size, len(pic))
		}
		pic = pic[:size]
	}
	stem := strings.TrimSuffix(strings.TrimSuffix(p.Name, ".jpg"), ".JPG")
	ts, pin, ok := strings.Cut(stem, "-")
	if !ok {
		return Photo{}, fmt.Errorf("zkpush: attphoto: file name %q is not <time>-<pin>.jpg", clip(p.Name))
	}
	var err error
	if p.At, err = time.ParseInLocation(photoLayout, ts, loc); err != nil {
		return Photo{}, fmt.Errorf("zkpush: attphoto: file name %q: time is not YYYYMMDDhhmmss", clip(p.Name))
	}
	if p.PIN, err = checkPIN(pin, alnum); err != nil {
		return Photo{}, fmt.Errorf("zkpush: attphoto: %w", err)
	}
	p.JPEG = pic
	return p, nil
}

// EncodePhoto is ParsePhoto's inverse, the protocol's own layout: for the emulator and tests.
func EncodePhoto(serial, pin string, at time.Time, jpeg []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "PIN=%s-%s.jpg\nSN=%s\nsize=%d\nCMD=uploadphoto", at.Format(photoLayout), pin, serial, len(jpeg))
	b.WriteByte(0)
	b.Write(jpeg)
	return b.Bytes()
}

// DecodeName turns a terminal's name bytes into text: UTF-8 when they are valid UTF-8, else
// GB18030 (a superset of the GB2312 and GBK that terminals in Chinese mode send).
func DecodeName(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

// EncodeGB18030 encodes text for a terminal in Chinese mode; characters GB18030 cannot hold
// (none in practice: it covers all of Unicode) fail.
func EncodeGB18030(s string) ([]byte, error) {
	return simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s))
}

// Fields splits a TAB-separated "key=value" record (an OPERLOG USER line, a USERINFO command)
// into its values by key; a part without "=" is ignored, a repeated key keeps its first value.
func Fields(rec []byte) map[string][]byte {
	out := map[string][]byte{}
	for _, part := range bytes.Split(rec, []byte{'\t'}) {
		k, v, ok := bytes.Cut(part, []byte{'='})
		if !ok {
			continue
		}
		key := string(bytes.TrimSpace(k))
		if _, dup := out[key]; !dup && key != "" {
			out[key] = bytes.TrimRight(v, "\r")
		}
	}
	return out
}

// Result is one line of a /iclock/devicecmd body: "ID=101&Return=0&CMD=DATA".
type Result struct {
	ID     string
	Return int
	Cmd    string
}

// ParseResults decodes a devicecmd body, one result a line. A line without an ID or a numeric
// Return is an error; the good lines before and after it are still returned.
func ParseResults(body []byte) ([]Result, error) {
	var out []Result
	var errs []error
	for n, ln := range strings.Split(string(body), "\n") {
		ln = strings.TrimRight(ln, "\r\x00")
		if strings.TrimSpace(ln) == "" {
			continue
		}
		var r Result
		haveRet := false
		for _, kv := range strings.Split(ln, "&") {
			k, v, _ := strings.Cut(kv, "=")
			switch strings.TrimSpace(k) {
			case "ID":
				r.ID = strings.TrimSpace(v)
			case "Return":
				x, err := strconv.Atoi(strings.TrimSpace(v))
				if err == nil {
					r.Return, haveRet = x, true
				}
			case "CMD":
				r.Cmd = strings.TrimSpace(v)
			}
		}
		if !validID(r.ID) || !haveRet {
			errs = append(errs, fmt.Errorf("zkpush: devicecmd: line %d %q: want ID=<id>&Return=<n>&CMD=<cmd>", n+1, clip(ln)))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// validID: the protocol's command ids are up to 16 letters and digits.
func validID(id string) bool {
	if id == "" || len(id) > 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// Command is one line of a getrequest reply: "C:<id>:<command>".
type Command struct {
	ID   string
	Text []byte
}

// ParseCommands decodes a getrequest reply (the emulator's side). "OK" alone means no command.
func ParseCommands(body []byte) ([]Command, error) {
	var out []Command
	for _, ln := range bytes.Split(body, []byte{'\n'}) {
		ln = bytes.TrimRight(ln, "\r")
		if len(bytes.TrimSpace(ln)) == 0 || string(bytes.TrimSpace(ln)) == "OK" {
			continue
		}
		rest, ok := bytes.CutPrefix(ln, []byte("C:"))
		if !ok {
			return out, fmt.Errorf("zkpush: command %q: want C:<id>:<command>", clip(string(ln)))
		}
		id, text, ok := bytes.Cut(rest, []byte{':'})
		if !ok || !validID(string(id)) || len(text) == 0 {
			return out, fmt.Errorf("zkpush: command %q: want C:<id>:<command>", clip(string(ln)))
		}
		out = append(out, Command{ID: string(id), Text: text})
	}
	return out, nil
}
