package cert_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent/cert"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in    string
		want  cert.Serial
		level string
	}{
		{"37000000012400001A", cert.Serial{Issuer: cert.Issuer{City: "3700", County: "00", Institution: "0001"}, Year: 2024, Seq: 1, Category: cert.Employment}, "provincial"},
		{"37010012342412345B", cert.Serial{Issuer: cert.Issuer{City: "3701", County: "00", Institution: "1234"}, Year: 2024, Seq: 12345, Category: cert.Upgrading}, "city"},
		{"37160099992599999C", cert.Serial{Issuer: cert.Issuer{City: "3716", County: "00", Institution: "9999"}, Year: 2025, Seq: 99999, Category: cert.Entrepreneurship}, "city"},
		{"37020502010000042A", cert.Serial{Issuer: cert.Issuer{City: "3702", County: "05", Institution: "0201"}, Year: 2000, Seq: 42, Category: cert.Employment}, "county"},
		{"37129900109900100C", cert.Serial{Issuer: cert.Issuer{City: "3712", County: "99", Institution: "0010"}, Year: 2099, Seq: 100, Category: cert.Entrepreneurship}, "county"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cert.Parse(tc.in)
			if err != nil {
				t.Fatalf("got error %v, want %+v", err, tc.want)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
			if l := got.Level(); l != tc.level {
				t.Errorf("Level() = %q, want %q", l, tc.level)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "0 characters, want 18"},
		{"17 characters", "37010012342412345", "17 characters, want 18"},
		{"19 characters", "37010012342412345BB", "19 characters, want 18"},
		{"category only", "A", "1 characters, want 18"},
		{"letter in city", "37A10012342412345B", "first 17 characters must be digits"},
		{"letter in sequence", "3701001234241234OB", "first 17 characters must be digits"},
		{"space", "3701 012342412345B", "first 17 characters must be digits"},
		{"all digits, no category", "370100123424123451", `category "1"`},
		{"category D", "37010012342412345D", `category "D"`},
		{"category lower-case a", "37010012342412345a", `category "a"`},
		{"category lower-case c", "37010012342412345c", `category "c"`},
		{"city 3717", "37170012342412345A", `city "3717" is not a Shandong code`},
		{"city 3600", "36000012342412345A", `city "3600" is not a Shandong code`},
		{"city 0000", "00000012342412345A", `city "0000" is not a Shandong code`},
		{"provincial with county 01", "37000112342412345A", `provincial projects (3700) use county 00`},
		{"provincial with county 10", "37001012342412345A", `provincial projects (3700) use county 00`},
		{"institution 0000", "37010000002412345A", `institution "0000"`},
		{"provincial institution 0000", "37000000002400001A", `institution "0000"`},
		{"sequence 00000", "37010012342400000A", "sequence 00000 is never issued"},
		{"multi-byte character", "37010012342412345Ａ", "20 characters, want 18"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cert.Parse(tc.in)
			if err == nil {
				t.Fatalf("got %+v, want an error containing %q", got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want one containing %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "cert: ") {
				t.Errorf("error %q: want the cert: prefix", err)
			}
			if got != (cert.Serial{}) {
				t.Errorf("got %+v with the error, want the zero Serial", got)
			}
		})
	}
}

func TestIssuerValidate(t *testing.T) {
	tests := []struct {
		iss     cert.Issuer
		wantErr string
	}{
		{cert.Issuer{City: "3700", County: "00", Institution: "0001"}, ""},
		{cert.Issuer{City: "3705", County: "00", Institution: "0001"}, ""},
		{cert.Issuer{City: "3705", County: "21", Institution: "0001"}, ""},
		{cert.Issuer{City: "370", County: "00", Institution: "0001"}, `city "370": want 4 digits`},
		{cert.Issuer{City: "3717", County: "00", Institution: "0001"}, `city "3717" is not a Shandong code`},
		{cert.Issuer{City: "3705", County: "0", Institution: "0001"}, `county "0": want 2 digits`},
		{cert.Issuer{City: "3705", County: "0a", Institution: "0001"}, `county "0a": want 2 digits`},
		{cert.Issuer{City: "3700", County: "02", Institution: "0001"}, "provincial projects (3700) use county 00"},
		{cert.Issuer{City: "3705", County: "00", Institution: "001"}, `institution "001"`},
		{cert.Issuer{City: "3705", County: "00", Institution: "0000"}, `institution "0000"`},
		{cert.Issuer{City: "3705", County: "00", Institution: ""}, `institution ""`},
	}
	for _, tc := range tests {
		err := tc.iss.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: got %v, want nil", tc.iss, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: got %v, want an error containing %q", tc.iss, err, tc.wantErr)
		}
	}
	if got, want := (cert.Issuer{City: "3701", County: "00", Institution: "1234"}).Key(2024), "370100123424"; got != want {
		t.Errorf("Key(2024) = %q, want %q", got, want)
	}
	if got, want := (cert.Issuer{City: "3701", County: "00", Institution: "1234"}).Key(2005), "370100123405"; got != want {
		t.Errorf("Key(2005) = %q, want %q", got, want)
	}
}

// Every one of the 17 cities (and nothing else in 3700-3799) is a valid code.
func TestCities(t *testing.T) {
	if len(cert.Cities) != 17 {
		t.Errorf("got %d city codes, want 17 (3700-3716)", len(cert.Cities))
	}
	for n := 3700; n <= 3799; n++ {
		city := strconv.Itoa(n)
		_, err := cert.Parse(city + "0000012600001A")
		if want := n <= 3716; (err == nil) != want {
			t.Errorf("city %s: got error %v, want valid %v", city, err, want)
		}
	}
}

func TestNext(t *testing.T) {
	city := cert.Issuer{City: "3701", County: "00", Institution: "1234"}
	county := cert.Issuer{City: "3703", County: "02", Institution: "0042"}
	tests := []struct {
		name    string
		iss     cert.Issuer
		year    int
		cat     cert.Category
		last    int
		want    string
		wantErr string
	}{
		{"first of the year", city, 2026, cert.Employment, 0, "37010012342600001A", ""},
		{"after 41", county, 2026, cert.Upgrading, 41, "37030200422600042B", ""},
		{"second last", city, 2026, cert.Entrepreneurship, 99997, "37010012342699998C", ""},
		{"last", city, 2026, cert.Employment, 99998, "37010012342699999A", ""},
		{"exhausted", city, 2026, cert.Employment, 99999, "", "sequence 99999 reached"},
		{"beyond", city, 2026, cert.Employment, 100000, "", "sequence 99999 reached"},
		{"year 1999", city, 1999, cert.Employment, 0, "", "year 1999 outside 2000-2099"},
		{"year 2100", city, 2100, cert.Employment, 0, "", "year 2100 outside 2000-2099"},
		{"two-digit year", city, 26, cert.Employment, 0, "", "year 26 outside 2000-2099"},
		{"invalid issuer", cert.Issuer{City: "3717", County: "00", Institution: "1234"}, 2026, cert.Employment, 0, "", `city "3717"`},
		{"provincial with county", cert.Issuer{City: "3700", County: "01", Institution: "1234"}, 2026, cert.Employment, 0, "", "county 00"},
		{"category D", city, 2026, cert.Category('D'), 0, "", `category "D"`},
		{"category zero", city, 2026, 0, 0, "", "category"},
		{"negative counter", city, 2026, cert.Employment, -1, "", "counter -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cert.Next(tc.iss, tc.year, tc.cat, tc.last)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if got != (cert.Serial{}) {
					t.Errorf("got %+v with the error, want the zero Serial", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %s", err, tc.want)
			}
			if s := got.String(); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
			// Whatever Next hands out must be a serial Parse accepts.
			back, err := cert.Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(Next()) = %v, want the serial back", err)
			}
			if back != got {
				t.Errorf("Parse(Next()) = %+v, want %+v", back, got)
			}
		})
	}
	_, err := cert.Next(city, 2026, cert.Employment, cert.MaxSeq)
	if !errors.Is(err, cert.ErrExhausted) {
		t.Errorf("Next after MaxSeq: got %v, want ErrExhausted", err)
	}
	if !strings.Contains(err.Error(), "370100123426") {
		t.Errorf("ErrExhausted %q: want it to name the issuer and year", err)
	}
}

// Counting from 0 reaches 99999 and stops: every serial valid and distinct.
func TestNextRunsToExhaustion(t *testing.T) {
	iss := cert.Issuer{City: "3700", County: "00", Institution: "0007"}
	seen := make(map[string]bool, cert.MaxSeq)
	last := 0
	for {
		s, err := cert.Next(iss, 2027, cert.Upgrading, last)
		if errors.Is(err, cert.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatalf("after %d: %v", last, err)
		}
		if s.Seq != last+1 {
			t.Fatalf("after %d: got sequence %d, want %d", last, s.Seq, last+1)
		}
		str := s.String()
		if len(str) != cert.Len || seen[str] {
			t.Fatalf("after %d: got %q (len %d, seen before %v)", last, str, len(str), seen[str])
		}
		seen[str] = true
		last = s.Seq
	}
	if last != cert.MaxSeq || len(seen) != cert.MaxSeq {
		t.Errorf("stopped after %d with %d serials, want %d", last, len(seen), cert.MaxSeq)
	}
}

func TestCategory(t *testing.T) {
	tests := []struct {
		in      string
		want    cert.Category
		str     string
		wantErr bool
	}{
		{"A", cert.Employment, "A employment skills (就业技能培训)", false},
		{"B", cert.Upgrading, "B on-the-job skills upgrading (岗位技能提升培训)", false},
		{"C", cert.Entrepreneurship, "C entrepreneurship (创业培训)", false},
		{"D", 0, "", true},
		{"a", 0, "", true},
		{"", 0, "", true},
		{"AB", 0, "", true},
		{"1", 0, "", true},
	}
	for _, tc := range tests {
		got, err := cert.ParseCategory(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseCategory(%q): got error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseCategory(%q) = %c, want %c", tc.in, got, tc.want)
		}
		if !tc.wantErr && got.String() != tc.str {
			t.Errorf("%c.String() = %q, want %q", got, got.String(), tc.str)
		}
	}
	if got, want := cert.Category('D').String(), "invalid category 'D'"; got != want {
		t.Errorf("Category('D').String() = %q, want %q", got, want)
	}
}
