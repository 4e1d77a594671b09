package lineterm

import (
	"slices"
	"testing"
)

// feed feeds the chunks one after the other and collects everything.
func feed(f *Framer, chunks ...string) (lines []string, discarded int) {
	for _, c := range chunks {
		l, d := f.Feed([]byte(c))
		lines = append(lines, l...)
		discarded += d
	}
	return lines, discarded
}

func TestFramer(t *testing.T) {
	tests := []struct {
		name      string
		framing   Framing
		max       int
		in        string
		want      []string
		discarded int
	}{
		{"lf", LF, 0, "a\nbc\n", []string{"a", "bc"}, 0},
		{"lf keeps cr", LF, 0, "a\r\nb\rc\n", []string{"a\r", "b\rc"}, 0},
		{"lf pending tail", LF, 0, "a\nb", []string{"a"}, 0},
		{"lf empty lines skipped", LF, 0, "\n\na\n\n", []string{"a"}, 0},
		{"crlf", CRLF, 0, "a\r\nbc\r\n", []string{"a", "bc"}, 0},
		{"crlf lone cr and lf are content", CRLF, 0, "a\rb\nc\r\n", []string{"a\rb\nc"}, 0},
		{"crlf double cr", CRLF, 0, "a\r\r\n", []string{"a\r"}, 0},
		{"crlf pending cr", CRLF, 0, "a\r\nb\r", []string{"a"}, 0},
		{"cr", CR, 0, "a\rbc\r", []string{"a", "bc"}, 0},
		{"cr keeps lf", CR, 0, "a\r\nb\r", []string{"a", "\nb"}, 0},
		{"stx/etx", STXETX, 0, "\x02a\x03\x02bc\x03", []string{"a", "bc"}, 0},
		{"stx/etx garbage between frames", STXETX, 0, "zz\x02a\x03\r\nnoise\x03\x02b\x03x", []string{"a", "b"}, 0},
		{"stx/etx stray etx", STXETX, 0, "\x03\x03\x02a\x03", []string{"a"}, 0},
		{"stx/etx torn frame", STXETX, 0, "\x02ab\x02cd\x03", []string{"cd"}, 1},
		{"stx/etx empty frame", STXETX, 0, "\x02\x03\x02\x02a\x03", []string{"a"}, 0},
		{"stx/etx keeps cr lf", STXETX, 0, "\x02a\r\nb\x03", []string{"a\r\nb"}, 0},
		{"lf exactly max", LF, 3, "abc\n", []string{"abc"}, 0},
		{"lf overlong to next delimiter", LF, 3, "abcd\nxy\n", []string{"xy"}, 1},
		{"lf overlong long run", LF, 3, "abcdefghijklmnop\n\nxy\n", []string{"xy"}, 1},
		{"lf overlong pending", LF, 3, "abcdefg", nil, 0},
		{"crlf overlong with cr", CRLF, 3, "abc\r\r\nok\r\n", []string{"ok"}, 1},
		{"crlf exactly max", CRLF, 3, "abc\r\n", []string{"abc"}, 0},
		{"cr overlong", CR, 2, "abc\rde\r", []string{"de"}, 1},
		{"stx/etx overlong", STXETX, 2, "\x02abc\x03\x02de\x03", []string{"de"}, 1},
		{"stx/etx overlong cut by stx", STXETX, 2, "\x02abcdef\x02de\x03", []string{"de"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, cut at every position, and byte by byte must all give the same.
			cuts := [][]string{{tt.in}}
			for i := 1; i < len(tt.in); i++ {
				cuts = append(cuts, []string{tt.in[:i], tt.in[i:]})
			}
			var bytewise []string
			for i := range len(tt.in) {
				bytewise = append(bytewise, tt.in[i:i+1])
			}
			cuts = append(cuts, bytewise)
			for _, chunks := range cuts {
				lines, discarded := feed(NewFramer(tt.framing, tt.max), chunks...)
				if !slices.Equal(lines, tt.want) || discarded != tt.discarded {
					t.Fatalf("Feed(%q): got %q, %d discarded; want %q, %d discarded", chunks, lines, discarded, tt.want, tt.discarded)
				}
			}
		})
	}
}

func TestFramerDefaultMax(t *testing.T) {
	long := make([]byte, DefaultMaxLine)
	for i := range long {
		long[i] = 'x'
	}
	lines, discarded := feed(NewFramer(LF, 0), string(long)+"\n"+string(long)+"y\nz\n")
	if len(lines) != 2 || lines[0] != string(long) || lines[1] != "z" || discarded != 1 {
		t.Fatalf("got %d lines (%.10q...), %d discarded; want the %d-byte line and \"z\", 1 discarded", len(lines), lines, discarded, DefaultMaxLine)
	}
}

func TestFramingAppend(t *testing.T) {
	for _, tt := range []struct {
		f    Framing
		want string
	}{{LF, "ab\n"}, {CRLF, "ab\r\n"}, {CR, "ab\r"}, {STXETX, "\x02ab\x03"}} {
		if got := string(tt.f.Append(nil, []byte("ab"))); got != tt.want {
			t.Errorf("%v.Append(ab): got %q, want %q", tt.f, got, tt.want)
		}
		lines, _ := feed(NewFramer(tt.f, 0), tt.want)
		if !slices.Equal(lines, []string{"ab"}) {
			t.Errorf("%v: framing its own Append: got %q, want [ab]", tt.f, lines)
		}
	}
}

func TestParseFraming(t *testing.T) {
	for _, f := range []Framing{LF, CRLF, CR, STXETX} {
		got, err := ParseFraming(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFraming(%q): got %v, %v; want %v, nil", f.String(), got, err, f)
		}
	}
	for in, want := range map[string]Framing{"LF": LF, " CrLf ": CRLF, "STXETX": STXETX} {
		if got, err := ParseFraming(in); err != nil || got != want {
			t.Errorf("ParseFraming(%q): got %v, %v; want %v, nil", in, got, err, want)
		}
	}
	for _, in := range []string{"", "nl", "stx"} {
		if _, err := ParseFraming(in); err == nil {
			t.Errorf("ParseFraming(%q): got no error, want one", in)
		}
	}
	if got, want := Framing(9).String(), "Framing(9)"; got != want {
		t.Errorf("Framing(9).String(): got %q, want %q", got, want)
	}
}
