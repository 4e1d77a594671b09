package lineterm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDropReason(t *testing.T) {
	w := Wiegand26
	bad := func(s string) error { _, err := w.Decode(s); return err }
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %q", errNoMatch, "hello"), "no-match"},
		{fmt.Errorf("%w: %q in %q", errScore, "high", "FACE:T1:high:in"), "bad-score"},
		{errDiscarded, "overlong"},
		{bad("zz"), "wiegand-frame"},
		{bad(strings.Repeat("0", 25) + "0"), "wiegand-parity"}, // odd parity over zeros fails
		{errors.New("something else"), "other"},
	} {
		if got := dropReason(c.err); got != c.want {
			t.Errorf("dropReason(%v): got %q, want %q", c.err, got, c.want)
		}
	}
}

func TestClip(t *testing.T) {
	if got := clip("short", 10); got != "short" {
		t.Errorf("clip of a short string: got %q, want it unchanged", got)
	}
	s := strings.Repeat("考勤", 20) // 3 bytes a character
	got := clip(s, 10)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > 10+len("…") {
		t.Errorf("clip(%q, 10): got %q, want at most 10 bytes of whole characters and a mark", s, got)
	}
}
