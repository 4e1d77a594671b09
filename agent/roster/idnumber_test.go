package roster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/roster"
)

// testNow is the clock the ID number tests judge birth dates against.
var testNow = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// makeID completes 17 digits (region 6 + birth date 8 + sequence 3) with the check character that
// roster.CheckChar computes. The numbers are synthetic; none is hard-coded.
func makeID(t testing.TB, first17 string) string {
	t.Helper()
	if len(first17) != 17 {
		t.Fatalf("makeID(%q): %d characters, want 17", first17, len(first17))
	}
	return first17 + string(roster.CheckChar(weightedSum(first17)))
}

// weightedSum is Σ dᵢ·wᵢ with the GB 11643 weights, written out here independently of the package.
func weightedSum(first17 string) int {
	w := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(first17[i]-'0') * w[i]
	}
	return sum
}

// idWithCheck returns a valid synthetic number whose check character is want, by trying sequence
// numbers.
func idWithCheck(t testing.TB, region, birth string, want byte) string {
	t.Helper()
	for seq := range 1000 {
		first := region + birth + threeDigits(seq)
		if roster.CheckChar(weightedSum(first)) == want {
			return first + string(want)
		}
	}
	t.Fatalf("no sequence gives check character %c", want)
	return ""
}

func threeDigits(n int) string {
	return string([]byte{byte('0' + n/100%10), byte('0' + n/10%10), byte('0' + n%10)})
}

// CheckChar must be the ISO 7064 MOD 11-2 check: with weights 2^(18-i) mod 11 for positions 1-18
// (the check character, X = 10, has weight 1), the weighted sum of a valid number is 1 mod 11.
// This checks CheckChar against that definition, not against its own formula.
func TestCheckCharIsMod11_2(t *testing.T) {
	for sum := range 400 {
		c := roster.CheckChar(sum)
		var v int
		switch {
		case c == 'X':
			v = 10
		case c >= '0' && c <= '9':
			v = int(c - '0')
		default:
			t.Fatalf("CheckChar(%d) = %q, want a digit or X", sum, c)
		}
		if got := (sum + v) % 11; got != 1 {
			t.Errorf("CheckChar(%d) = %c: (sum + check) mod 11 = %d, want 1", sum, c, got)
		}
	}
	// The weights the package uses are the powers of 2 mod 11 the standard derives them from.
	first := "37010219900307123"
	sum := 0
	for i := range 17 {
		w := 1
		for range 17 - i {
			w = w * 2 % 11
		}
		sum += int(first[i]-'0') * w
	}
	if err := roster.ValidateIDNumber(first+string(roster.CheckChar(sum)), testNow); err != nil {
		t.Errorf("number checked with 2^k mod 11 weights refused: %v", err)
	}
}

func TestValidateIDNumber(t *testing.T) {
	valid := makeID(t, "37010219900307123")
	withX := idWithCheck(t, "370102", "19851120", 'X')
	tests := []struct {
		name    string
		id      string
		wantErr string // substring; "" means valid
	}{
		{"valid", valid, ""},
		{"valid with check X", withX, ""},
		{"valid leap day", makeID(t, "37010220000229001"), ""},
		{"valid 1900-01-01", makeID(t, "37010219000101001"), ""},
		{"valid born today", makeID(t, "37010220260302001"), ""},
		{"empty", "", "0 characters, want 18"},
		{"17 characters", valid[:17], "17 characters, want 18"},
		{"19 characters", valid + "1", "19 characters, want 18"},
		{"15-digit first generation", valid[:15], "15 characters, want 18"},
		{"letter in digits", "3701A2" + valid[6:], "character 5 is not a digit"},
		{"space in digits", valid[:16] + " " + valid[17:], "character 17 is not a digit"},
		{"X in the first 17", "X" + valid[1:], "character 1 is not a digit"},
		{"lower-case x", withX[:17] + "x", "upper-case X"},
		{"Feb 30", makeID(t, "37010219900230001"), "not a real birth date"},
		{"Feb 29 of a common year", makeID(t, "37010219900229001"), "not a real birth date"},
		{"month 13", makeID(t, "37010219901301001"), "not a real birth date"},
		{"day 00", makeID(t, "37010219900100001"), "not a real birth date"},
		{"future birth date", makeID(t, "37010220260303001"), "birth date out of range"},
		{"far future", makeID(t, "37010220990101001"), "birth date out of range"},
		{"before 1900", makeID(t, "37010218991231001"), "birth date out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := roster.ValidateIDNumber(tc.id, testNow)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got error %q, want nil", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("got nil, want an error containing %q", tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("got error %q, want one containing %q", err, tc.wantErr)
			}
			// The number is sensitive: an error never repeats it, nor its birth date.
			if err != nil && len(tc.id) >= 14 && strings.Contains(err.Error(), tc.id[6:14]) {
				t.Errorf("error %q repeats the birth date digits of the number", err)
			}
		})
	}
}

// Every check character other than the right one is refused, and so is every single-digit typo.
func TestValidateIDNumberEveryWrongCheck(t *testing.T) {
	for _, id := range []string{makeID(t, "37010219900307123"), idWithCheck(t, "370203", "19770615", 'X'),
		idWithCheck(t, "371302", "20011231", '0')} {
		if err := roster.ValidateIDNumber(id, testNow); err != nil {
			t.Fatalf("base number refused: %v", err)
		}
		for _, c := range []byte("0123456789Xx") {
			if c == id[17] {
				continue
			}
			bad := id[:17] + string(c)
			err := roster.ValidateIDNumber(bad, testNow)
			if err == nil {
				t.Errorf("check %c instead of %c: got nil, want an error", c, id[17])
				continue
			}
			if c == 'x' && id[17] == 'X' {
				continue // its own message, tested above
			}
			if !strings.Contains(err.Error(), "check character does not match") {
				t.Errorf("check %c instead of %c: got %q, want a check character mismatch", c, id[17], err)
			}
		}
		// MOD 11-2 catches every single substitution in the first 17 digits.
		for i := range 17 {
			for d := byte('0'); d <= '9'; d++ {
				if d == id[i] {
					continue
				}
				bad := id[:i] + string(d) + id[i+1:]
				if err := roster.ValidateIDNumber(bad, testNow); err == nil {
					t.Errorf("digit %d changed %c->%c: got nil, want an error", i+1, id[i], d)
				}
			}
		}
	}
}

func TestMaskID(t *testing.T) {
	id := makeID(t, "37010219900307123")
	tests := []struct {
		in, want string
	}{
		{id, id[:6] + "********" + id[14:]},
		{"", ""},
		{"123", "***"},
		{"123456789", "*********"},
		{"1234567890", "1234567890"},   // 6 + 4: nothing in between to hide
		{"12345678901", "123456*8901"}, // one hidden
	}
	for _, tc := range tests {
		if got := roster.MaskID(tc.in); got != tc.want {
			t.Errorf("MaskID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	m := roster.MaskID(id)
	if len(m) != 18 || strings.Contains(m, id[6:14]) || m[:6] != id[:6] || m[14:] != id[14:] {
		t.Errorf("MaskID(valid) = %q: want 18 characters, first 6 and last 4 visible, birth date hidden", m)
	}
}

func TestWithCheckChar(t *testing.T) {
	for _, first := range []string{"37010219900101001", "11010519491231002", "44030420051231999", "00000000000000000"} {
		want := first + string(roster.CheckChar(weightedSum(first)))
		if got := roster.WithCheckChar(first); got != want {
			t.Errorf("WithCheckChar(%s): got %s, want %s", first, got, want)
		}
	}
	if err := roster.ValidateIDNumber(roster.WithCheckChar("37010219900101001"), time.Now()); err != nil {
		t.Errorf("a completed number does not validate: %v", err)
	}
}
