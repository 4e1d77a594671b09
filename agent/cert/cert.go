// Package cert decodes, validates and allocates training certificate serial numbers as annex 2 of
// the 2024 Shandong notice on subsidised vocational training (section 五(二)) defines them.
//
// A serial has 18 characters: city (4) + county (2) + institution (4) + year (2) + sequence (5) +
// category (1). The city is a code from Cities (3700 for provincial projects); the county is 00 for
// provincial and city level; the sequence runs 00001-99999 per institution and year; the category
// is A (employment skills), B (on-the-job upgrading) or C (entrepreneurship). The notice calls the
// serial "18 digits" but its own annex makes the last character a letter; this package follows the
// annex. Institution codes of institutions that stop are retired and never reassigned; allocation
// (agent/store) enforces that and persists every sequence it hands out.
package cert

import (
	"errors"
	"fmt"
	"strconv"
)

// Len is the length of a serial.
const Len = 18

// MaxSeq is the last sequence number of an institution in a year.
const MaxSeq = 99999

// Errors of this package.
var (
	ErrExhausted = errors.New("cert: sequence 99999 reached for this institution and year")
	ErrRetired   = errors.New("cert: institution code is retired")
)

// Cities maps the city codes of Shandong to their names; 3700 is the province itself.
var Cities = map[string]string{
	"3700": "山东省 (provincial)", "3701": "济南 Jinan", "3702": "青岛 Qingdao", "3703": "淄博 Zibo",
	"3704": "枣庄 Zaozhuang", "3705": "东营 Dongying", "3706": "烟台 Yantai", "3707": "潍坊 Weifang",
	"3708": "济宁 Jining", "3709": "泰安 Tai'an", "3710": "威海 Weihai", "3711": "日照 Rizhao",
	"3712": "临沂 Linyi", "3713": "德州 Dezhou", "3714": "聊城 Liaocheng", "3715": "滨州 Binzhou",
	"3716": "菏泽 Heze",
}

// Category is the training category, the serial's last character.
type Category byte

// Categories.
const (
	Employment       Category = 'A' // 就业技能培训
	Upgrading        Category = 'B' // 岗位技能提升培训
	Entrepreneurship Category = 'C' // 创业培训
)

// ParseCategory accepts A, B or C.
func ParseCategory(s string) (Category, error) {
	if len(s) == 1 {
		if c := Category(s[0]); c == Employment || c == Upgrading || c == Entrepreneurship {
			return c, nil
		}
	}
	return 0, fmt.Errorf("cert: category %q: want A (employment skills), B (on-the-job upgrading) or C (entrepreneurship)", s)
}

func (c Category) String() string {
	switch c {
	case Employment:
		return "A employment skills (就业技能培训)"
	case Upgrading:
		return "B on-the-job skills upgrading (岗位技能提升培训)"
	case Entrepreneurship:
		return "C entrepreneurship (创业培训)"
	}
	return fmt.Sprintf("invalid category %q", byte(c))
}

// Issuer is the part of a serial that names who issues it: city, county and institution.
type Issuer struct {
	City        string // 4 digits, a key of Cities
	County      string // 2 digits, 00 at provincial and city level
	Institution string // 4 digits
}

// Validate checks the issuer's codes.
func (i Issuer) Validate() error {
	if !digits(i.City, 4) {
		return fmt.Errorf("cert: city %q: want 4 digits", i.City)
	}
	if _, ok := Cities[i.City]; !ok {
		return fmt.Errorf("cert: city %q is not a Shandong code (3700-3716)", i.City)
	}
	if !digits(i.County, 2) {
		return fmt.Errorf("cert: county %q: want 2 digits (00 at provincial and city level)", i.County)
	}
	if i.City == "3700" && i.County != "00" {
		return fmt.Errorf("cert: county %q: provincial projects (3700) use county 00", i.County)
	}
	if !digits(i.Institution, 4) || i.Institution == "0000" {
		return fmt.Errorf("cert: institution %q: want 4 digits, not 0000", i.Institution)
	}
	return nil
}

// Key is the issuer and year as the 12-character prefix of its serials, used to key sequences.
func (i Issuer) Key(year int) string {
	return fmt.Sprintf("%s%s%s%02d", i.City, i.County, i.Institution, year%100)
}

// Serial is a decoded certificate serial.
type Serial struct {
	Issuer
	Year     int // four digits, 2000-2099
	Seq      int // 1..MaxSeq
	Category Category
}

// Parse decodes and validates a serial.
func Parse(s string) (Serial, error) {
	var z Serial
	if len(s) != Len {
		return z, fmt.Errorf("cert: %q has %d characters, want %d", s, len(s), Len)
	}
	if !digits(s[:17], 17) {
		return z, fmt.Errorf("cert: %q: the first 17 characters must be digits", s)
	}
	cat, err := ParseCategory(s[17:])
	if err != nil {
		return z, err
	}
	yy, _ := strconv.Atoi(s[10:12])
	seq, _ := strconv.Atoi(s[12:17])
	sn := Serial{Issuer: Issuer{City: s[0:4], County: s[4:6], Institution: s[6:10]}, Year: 2000 + yy, Seq: seq, Category: cat}
	if err := sn.Issuer.Validate(); err != nil {
		return z, err
	}
	if seq < 1 {
		return z, fmt.Errorf("cert: %q: sequence 00000 is never issued (it runs 00001-99999)", s)
	}
	return sn, nil
}

// String encodes the serial.
func (s Serial) String() string {
	return fmt.Sprintf("%s%05d%c", s.Issuer.Key(s.Year), s.Seq, s.Category)
}

// Level says whether the issuer is provincial, city or county level.
func (s Serial) Level() string {
	switch {
	case s.City == "3700":
		return "provincial"
	case s.County == "00":
		return "city"
	}
	return "county"
}

// Next returns the serial after a sequence counter's last value, or ErrExhausted.
func Next(iss Issuer, year int, cat Category, last int) (Serial, error) {
	if last >= MaxSeq {
		return Serial{}, fmt.Errorf("%w (%s)", ErrExhausted, iss.Key(year))
	}
	if last < 0 {
		return Serial{}, fmt.Errorf("cert: counter %d is negative", last)
	}
	if year < 2000 || year > 2099 {
		return Serial{}, fmt.Errorf("cert: year %d outside 2000-2099", year)
	}
	// A serial handed out must be one Parse accepts.
	if _, err := ParseCategory(string([]byte{byte(cat)})); err != nil {
		return Serial{}, err
	}
	s := Serial{Issuer: iss, Year: year, Seq: last + 1, Category: cat}
	if err := iss.Validate(); err != nil {
		return Serial{}, err
	}
	return s, nil
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
