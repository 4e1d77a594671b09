package roster

import (
	"errors"
	"fmt"
	"time"
)

// GB 11643-1999 check digit weights for the first 17 characters.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// ValidateIDNumber checks an 18-character resident ID number: 17 digits, a real birth date in
// digits 7-14 that is not in the future, and the check character. The error says which part is
// wrong without repeating the number, which is sensitive personal data.
func ValidateIDNumber(id string, now time.Time) error {
	if len(id) != 18 {
		return fmt.Errorf("id number: %d characters, want 18", len(id))
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return fmt.Errorf("id number: character %d is not a digit", i+1)
		}
		sum += int(c-'0') * idWeights[i]
	}
	want := CheckChar(sum)
	if got := id[17]; got != want {
		if got == 'x' && want == 'X' {
			return errors.New("id number: check character must be an upper-case X")
		}
		return errors.New("id number: check character does not match (mistyped digit?)")
	}
	birth, err := time.Parse("20060102", id[6:14])
	if err != nil {
		return errors.New("id number: digits 7-14 are not a real birth date")
	}
	if birth.After(now) || birth.Year() < 1900 {
		return errors.New("id number: birth date out of range")
	}
	return nil
}

// WithCheckChar completes the first 17 digits of an ID number with their check character; tests
// and demos make synthetic numbers with it (never write a real person's number into the code).
func WithCheckChar(first17 string) string {
	sum := 0
	for i := 0; i < 17 && i < len(first17); i++ {
		sum += int(first17[i]-'0') * idWeights[i]
	}
	return first17 + string(CheckChar(sum))
}

// CheckChar is the GB 11643 check character for a weighted digit sum: (12 - sum mod 11) mod 11,
// with 10 written X.
func CheckChar(sum int) byte {
	v := (12 - sum%11) % 11
	if v == 10 {
		return 'X'
	}
	return byte('0' + v)
}

// MaskID shows the first 6 and the last 4 characters of an ID number (region and check) and hides
// the rest, which includes the birth date.
func MaskID(id string) string {
	if len(id) < 10 {
		return "**********"[:len(id)]
	}
	b := []byte(id)
	for i := 6; i < len(b)-4; i++ {
		b[i] = '*'
	}
	return string(b)
}
