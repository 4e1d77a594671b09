package ingest

import (
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// decodeFast reads the columns of a record body in the form a box writes it (encoding/json of a
// ledger.Event: no white space, lower-case keys, strings of the columns without escapes), in one
// pass and without reflection: json.Unmarshal of every body was a quarter of a consumer's CPU
// time. It reports false for anything it does not read exactly as json.Unmarshal into columns
// would (a key in another case, a duplicate column, an escape or a non-ASCII byte in a column,
// a null, a type that json.Unmarshal would refuse, white space, invalid JSON anywhere): decode
// then falls back to json.Unmarshal. FuzzDecodeFastAsJSON holds the two to the same answer.
func decodeFast(b []byte) (decoded, bool) {
	p := &scanner{b: b}
	var d decoded
	var seen members
	ok := p.object(func(key string) bool {
		switch key {
		case "kind":
			return seen.first(1) && p.plain(&d.kind)
		case "method":
			return seen.first(2) && p.plain(&d.method)
		case "trainee":
			return seen.first(4) && p.plain(&d.trainee)
		case "session":
			return seen.first(8) && p.plain(&d.session)
		case "institution":
			return seen.first(16) && p.plain(&d.institution)
		case "time":
			return seen.first(32) && p.clock(&d.wall)
		case "flags":
			return seen.first(64) && p.flags(&d.flags)
		case "evidence":
			return seen.first(128) && p.photos(&d.evidence)
		}
		return p.skip(0)
	})
	if !ok || p.i != len(b) {
		return decoded{}, false
	}
	if d.flags == nil {
		d.flags = []string{}
	}
	return d, true
}

// scanner reads JSON without white space from b[i:].
type scanner struct {
	b []byte
	i int
}

func (p *scanner) next(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key":value,...}, calling member with p at each value; keys must be lower-case
// ASCII letters, digits and underscores (any other key: false, since json.Unmarshal matches
// keys without regard to case).
func (p *scanner) object(member func(key string) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	for {
		if !p.next('"') {
			return false
		}
		start := p.i
		for p.i < len(p.b) && (p.b[p.i] >= 'a' && p.b[p.i] <= 'z' || p.b[p.i] >= '0' && p.b[p.i] <= '9' || p.b[p.i] == '_') {
			p.i++
		}
		key := string(p.b[start:p.i])
		if !p.next('"') || !p.next(':') || !member(key) {
			return false
		}
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// plain reads a string of printable ASCII without escapes into s.
func (p *scanner) plain(s *string) bool {
	if !p.next('"') {
		return false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			*s = string(p.b[start:p.i])
			p.i++
			return true
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
		p.i++
	}
	return false
}

// clock reads the time object; only its wall member is kept.
func (p *scanner) clock(wall *time.Time) bool {
	var seen members
	return p.object(func(key string) bool {
		if key != "wall" {
			return p.skip(1)
		}
		if !seen.first(1) {
			return false
		}
		start := p.i
		var s string
		if !p.plain(&s) {
			return false
		}
		return wall.UnmarshalJSON(p.b[start:p.i]) == nil
	})
}

// flags reads an array of plain strings.
func (p *scanner) flags(out *[]string) bool {
	*out = []string{}
	return p.array(func() bool {
		var s string
		if !p.plain(&s) {
			return false
		}
		*out = append(*out, s)
		return true
	})
}

// photos reads an array of evidence objects.
func (p *scanner) photos(out *[]ledger.Photo) bool {
	*out = []ledger.Photo{}
	return p.array(func() bool {
		var ph ledger.Photo
		var seen members
		ok := p.object(func(key string) bool {
			switch key {
			case "sha256":
				return seen.first(1) && p.plain(&ph.SHA256)
			case "kind":
				return seen.first(2) && p.plain(&ph.Kind)
			case "size":
				return seen.first(4) && p.int64(&ph.Size)
			}
			return p.skip(2)
		})
		if !ok {
			return false
		}
		*out = append(*out, ph)
		return true
	})
}

// array reads [item,item,...], calling item with p at each element.
func (p *scanner) array(item func() bool) bool {
	if !p.next('[') {
		return false
	}
	if p.next(']') {
		return true
	}
	for {
		if !item() {
			return false
		}
		if p.next(']') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// members records the columns an object has shown, one bit each.
type members uint8

// first reports whether the column of bit is seen for the first time, and records it. A column
// twice is left to json.Unmarshal (which would merge or replace).
func (m *members) first(bit members) bool {
	if *m&bit != 0 {
		return false
	}
	*m |= bit
	return true
}

// int64 reads an integer of at most 18 digits, without sign, exponent or fraction but for a
// leading minus (json.Unmarshal refuses a fraction or an exponent for an int64).
func (p *scanner) int64(n *int64) bool {
	neg := p.next('-')
	start := p.i
	var v int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 18 || p.b[start] == '0' && (digits > 1 || neg) {
		return false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return false
	}
	if neg {
		v = -v
	}
	*n = v
	return true
}

// skip passes over one JSON value of any kind, checking it as json.Unmarshal does (a member that
// no column reads must still be valid JSON). depth bounds the nesting.
func (p *scanner) skip(depth int) bool {
	if p.i >= len(p.b) || depth > 64 {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '{':
		p.i++
		if p.next('}') {
			return true
		}
		for {
			if !p.str() || !p.next(':') || !p.skip(depth+1) {
				return false
			}
			if p.next('}') {
				return true
			}
			if !p.next(',') {
				return false
			}
		}
	case c == '[':
		p.i++
		if p.next(']') {
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			if p.next(']') {
				return true
			}
			if !p.next(',') {
				return false
			}
		}
	case c == 't':
		return p.word("true")
	case c == 'f':
		return p.word("false")
	case c == 'n':
		return p.word("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return false
}

func (p *scanner) word(w string) bool {
	if len(p.b)-p.i >= len(w) && string(p.b[p.i:p.i+len(w)]) == w {
		p.i += len(w)
		return true
	}
	return false
}

// str passes over a string, checking its escapes (any byte from 0x20 up is allowed as is).
func (p *scanner) str() bool {
	if !p.next('"') {
		return false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if p.i >= len(p.b) {
				return false
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(p.b)-p.i < 4 {
					return false
				}
				for _, h := range p.b[p.i : p.i+4] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 4
			default:
				return false
			}
		}
	}
	return false
}

// number passes over a number of JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *scanner) number() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	p.next('-')
	if p.next('0') {
		// no more digits may follow a leading zero
	} else if digits() == 0 {
		return false
	}
	if p.next('.') && digits() == 0 {
		return false
	}
	if p.next('e') || p.next('E') {
		if !p.next('+') {
			p.next('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
