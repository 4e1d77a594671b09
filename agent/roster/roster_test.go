package roster_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/agent/roster"
)

var cst = time.FixedZone("CST", 8*3600)

func at(hh, mm int) time.Time { return time.Date(2026, 3, 2, hh, mm, 0, 0, cst) }

// validRoster is a small roster with no problem: two institutions, two programmes, three sessions
// (listed out of start order), two vouchers and two trainees.
func validRoster(t testing.TB) *roster.Roster {
	t.Helper()
	id1 := makeID(t, "37010219900307123")
	id2 := makeID(t, "37020319851120456")
	return &roster.Roster{
		Version: 3,
		Issued:  at(6, 0),
		Institutions: []roster.Institution{
			{Code: "0001", City: "3701", County: "00", Name: "Jinan Skills School", AcceptsVouchers: true},
			{Code: "0002", City: "3702", County: "03", Name: "Qingdao Training Centre"},
		},
		Programmes: []roster.Programme{
			{ID: "P1", Institution: "0001", Occupation: "electrician", Category: "A", Hours: 40},
			{ID: "P2", Institution: "0002", Occupation: "cook", Category: "B", Hours: 24},
		},
		Sessions: []roster.Session{
			{ID: "S1-pm", Programme: "P1", Class: "C1", Start: at(14, 0), End: at(17, 0)},
			{ID: "S1-am", Programme: "P1", Class: "C1", Start: at(9, 0), End: at(12, 0),
				LateAfter: roster.Duration(5 * time.Minute), Devices: []string{"r101"}},
			{ID: "S2", Programme: "P2", Class: "C2", Start: at(9, 0), End: at(11, 0)},
		},
		Vouchers: []roster.Voucher{
			{Code: "V1", Holder: id1, Kind: roster.Directed, Status: roster.Issued, Programme: "P1",
				Institutions: []string{"0001"}, ValidFrom: at(0, 0), ValidTo: at(0, 0).AddDate(1, 0, 0)},
			{Code: "V2", Holder: id2, Kind: roster.General, Status: roster.Bound, BoundTo: "0001",
				ValidFrom: at(0, 0), ValidTo: at(0, 0).AddDate(1, 0, 0)},
		},
		Trainees: []roster.Trainee{
			{ID: "T1", Name: "张三", IDNumber: id1, Enrolments: []roster.Enrolment{{Class: "C1", Voucher: "V1"}},
				Fingerprints: []roster.Fingerprint{{Finger: "right-index", Template: []byte{1, 2, 3}}},
				Cards:        []string{"CARD-1", "CARD-1b"}},
			{ID: "T2", Name: "李四", IDNumber: id2, Enrolments: []roster.Enrolment{{Class: "C2"}, {Class: "C1", Voucher: "V2"}},
				Cards: []string{"CARD-2"}},
		},
	}
}

func TestValidRosterHasNoProblem(t *testing.T) {
	if err := validRoster(t).Validate(testNow); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func problemsOf(t *testing.T, err error) roster.Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var p roster.Problems
	if !errors.As(err, &p) {
		t.Fatalf("got error %T %q, want roster.Problems", err, err)
	}
	return p
}

// One row per rule of Validate: a valid roster with one thing wrong gives exactly that problem.
func TestValidateEachRule(t *testing.T) {
	id3 := makeID(t, "37030419920101789")
	tests := []struct {
		name   string
		break_ func(r *roster.Roster)
		want   string // each problem expected, separated by " | " when one fault causes two
	}{
		{"version 0", func(r *roster.Roster) { r.Version = 0 }, "version: must be 1 or more"},

		{"institution duplicate code", func(r *roster.Roster) {
			r.Institutions = append(r.Institutions, roster.Institution{Code: "0001", City: "3703", County: "00", Name: "Other"})
		}, `institutions[2] "0001": duplicate code`},
		{"institution unknown city", func(r *roster.Roster) { r.Institutions[1].City = "3717" }, `institutions[1] "0002": city "3717" is not a Shandong code`},
		{"institution city not digits", func(r *roster.Roster) { r.Institutions[1].City = "37A2" }, `institutions[1] "0002": city "37A2": want 4 digits`},
		{"institution county not digits", func(r *roster.Roster) { r.Institutions[1].County = "3" }, `institutions[1] "0002": county "3": want 2 digits`},
		{"institution provincial with county", func(r *roster.Roster) { r.Institutions[1].City = "3700" }, `institutions[1] "0002": county "03": provincial projects (3700) use county 00`},
		{"institution code 0000", func(r *roster.Roster) {
			r.Institutions = append(r.Institutions, roster.Institution{Code: "0000", City: "3701", County: "00", Name: "Zero"})
		}, `institutions[2] "0000": institution "0000": want 4 digits, not 0000`},
		{"institution name empty", func(r *roster.Roster) { r.Institutions[0].Name = "" }, `institutions[0] "0001": name is empty`},

		{"programme id empty", func(r *roster.Roster) {
			r.Programmes = append(r.Programmes, roster.Programme{Institution: "0001", Occupation: "welder", Category: "A", Hours: 8})
		}, `programmes[2] "": id is empty`},
		{"programme duplicate id", func(r *roster.Roster) {
			r.Programmes = append(r.Programmes, roster.Programme{ID: "P1", Institution: "0001", Occupation: "welder", Category: "A", Hours: 8})
		}, `programmes[2] "P1": duplicate id`},
		{"programme institution unknown", func(r *roster.Roster) { r.Programmes[1].Institution = "0009" }, `programmes[1] "P2": institution "0009" is not in the roster`},
		{"programme category D", func(r *roster.Roster) { r.Programmes[0].Category = "D" }, `programmes[0] "P1": category "D": want A`},
		{"programme category lower-case", func(r *roster.Roster) { r.Programmes[0].Category = "a" }, `programmes[0] "P1": category "a": want A`},
		{"programme hours 0", func(r *roster.Roster) { r.Programmes[0].Hours = 0 }, `programmes[0] "P1": hours must be positive`},
		{"programme hours negative", func(r *roster.Roster) { r.Programmes[0].Hours = -4 }, `programmes[0] "P1": hours must be positive`},
		{"programme occupation empty", func(r *roster.Roster) { r.Programmes[0].Occupation = "" }, `programmes[0] "P1": occupation is empty`},

		{"session id empty", func(r *roster.Roster) {
			r.Sessions = append(r.Sessions, roster.Session{Programme: "P1", Class: "C1", Start: at(18, 0), End: at(19, 0)})
		}, `sessions[3] "": id is empty`},
		{"session duplicate id", func(r *roster.Roster) {
			r.Sessions = append(r.Sessions, roster.Session{ID: "S2", Programme: "P1", Class: "C1", Start: at(18, 0), End: at(19, 0)})
		}, `sessions[3] "S2": duplicate id`},
		{"session class empty", func(r *roster.Roster) {
			r.Sessions = append(r.Sessions, roster.Session{ID: "S9", Programme: "P1", Start: at(18, 0), End: at(19, 0)})
		}, `sessions[3] "S9": class is empty`},
		{"session programme unknown", func(r *roster.Roster) { r.Sessions[2].Programme = "P9" }, `sessions[2] "S2": programme "P9" is not in the roster`},
		{"session end before start", func(r *roster.Roster) { r.Sessions[2].End = at(8, 0) }, `sessions[2] "S2": end must be after start`},
		{"session end equals start", func(r *roster.Roster) { r.Sessions[2].End = r.Sessions[2].Start }, `sessions[2] "S2": end must be after start`},
		{"session zero start", func(r *roster.Roster) { r.Sessions[2].Start = time.Time{} }, `sessions[2] "S2": end must be after start`},
		{"session sign_in_opens negative", func(r *roster.Roster) { r.Sessions[2].SignInOpens = -1 }, `sessions[2] "S2": sign_in_opens is negative`},
		{"session late_after negative", func(r *roster.Roster) { r.Sessions[2].LateAfter = roster.Duration(-time.Minute) }, `sessions[2] "S2": late_after is negative`},
		// A negative sign_in_closes puts the late mark (never negative) after the close as well.
		{"session sign_in_closes negative", func(r *roster.Roster) { r.Sessions[2].SignInCloses = roster.Duration(-time.Minute) },
			`sessions[2] "S2": sign_in_closes is negative | sessions[2] "S2": late_after is after sign_in_closes`},
		{"session sign_out_opens negative", func(r *roster.Roster) { r.Sessions[2].SignOutOpens = roster.Duration(-time.Minute) }, `sessions[2] "S2": sign_out_opens is negative`},
		{"session sign_out_closes negative", func(r *roster.Roster) { r.Sessions[2].SignOutCloses = roster.Duration(-time.Minute) }, `sessions[2] "S2": sign_out_closes is negative`},
		{"session late after sign-in closes", func(r *roster.Roster) {
			r.Sessions[2].LateAfter = roster.Duration(20 * time.Minute)
			r.Sessions[2].SignInCloses = roster.Duration(15 * time.Minute)
		}, `sessions[2] "S2": late_after is after sign_in_closes`},

		{"voucher code empty", func(r *roster.Roster) {
			v := r.Vouchers[1]
			v.Code = ""
			r.Vouchers = append(r.Vouchers, v)
		}, `vouchers[2] "": code is empty`},
		{"voucher duplicate code", func(r *roster.Roster) {
			v := r.Vouchers[1]
			r.Vouchers = append(r.Vouchers, v)
		}, `vouchers[2] "V2": duplicate code`},
		{"voucher holder invalid", func(r *roster.Roster) {
			v := r.Vouchers[1]
			v.Code, v.Holder = "V3", v.Holder[:17]+"Z"
			r.Vouchers = append(r.Vouchers, v)
		}, `vouchers[2] "V3": holder id number: check character does not match`},
		{"directed voucher without programme or occupation", func(r *roster.Roster) { r.Vouchers[0].Programme = "" }, `vouchers[0] "V1": a directed voucher names a programme or an occupation`},
		{"directed voucher without institutions", func(r *roster.Roster) { r.Vouchers[0].Institutions = nil }, `vouchers[0] "V1": a directed voucher names its institutions`},
		{"voucher kind unknown", func(r *roster.Roster) { r.Vouchers[1].Kind = "universal" }, `vouchers[1] "V2": kind "universal": want directed or general`},
		{"voucher kind empty", func(r *roster.Roster) { r.Vouchers[1].Kind = "" }, `vouchers[1] "V2": kind "": want directed or general`},
		{"voucher bound to unknown institution", func(r *roster.Roster) { r.Vouchers[1].BoundTo = "0009" }, `vouchers[1] "V2": bound to institution "0009" which is not in the roster`},
		{"voucher bound to nothing", func(r *roster.Roster) { r.Vouchers[1].BoundTo = "" }, `vouchers[1] "V2": bound to institution "" which is not in the roster`},
		{"voucher status unknown", func(r *roster.Roster) { r.Vouchers[0].Status = "lost" }, `vouchers[0] "V1": status "lost": want issued, bound, used or revoked`},
		{"voucher programme unknown", func(r *roster.Roster) { r.Vouchers[0].Programme = "P9" }, `vouchers[0] "V1": programme "P9" is not in the roster`},
		{"voucher institution unknown", func(r *roster.Roster) { r.Vouchers[0].Institutions = []string{"0001", "0009"} }, `vouchers[0] "V1": institution "0009" is not in the roster`},
		{"voucher valid_to before valid_from", func(r *roster.Roster) { r.Vouchers[0].ValidTo = r.Vouchers[0].ValidFrom.Add(-time.Hour) }, `vouchers[0] "V1": valid_to must be after valid_from`},
		{"voucher valid_to equals valid_from", func(r *roster.Roster) { r.Vouchers[0].ValidTo = r.Vouchers[0].ValidFrom }, `vouchers[0] "V1": valid_to must be after valid_from`},

		{"trainee id empty", func(r *roster.Roster) {
			r.Trainees = append(r.Trainees, roster.Trainee{Name: "王五", IDNumber: id3})
		}, `trainees[2] "": id is empty`},
		{"trainee duplicate id", func(r *roster.Roster) {
			r.Trainees = append(r.Trainees, roster.Trainee{ID: "T1", Name: "王五", IDNumber: id3})
		}, `trainees[2] "T1": duplicate id`},
		{"trainee name empty", func(r *roster.Roster) { r.Trainees[1].Name = "" }, `trainees[1] "T2": name is empty`},
		{"trainee id number invalid", func(r *roster.Roster) {
			r.Trainees = append(r.Trainees, roster.Trainee{ID: "T3", Name: "王五", IDNumber: id3[:17]})
		}, `trainees[2] "T3": id number: 17 characters, want 18`},
		{"trainee id number duplicate", func(r *roster.Roster) {
			r.Trainees = append(r.Trainees, roster.Trainee{ID: "T3", Name: "王五", IDNumber: r.Trainees[0].IDNumber})
		}, `trainees[2] "T3": id number ` + roster.MaskID(makeID(t, "37010219900307123")) + ` is also trainee "T1"'s`},
		{"enrolment class without session", func(r *roster.Roster) {
			r.Trainees[1].Enrolments = append(r.Trainees[1].Enrolments, roster.Enrolment{Class: "C9"})
		}, `trainees[1] "T2": enrolments[2]: class "C9" has no session in the roster`},
		{"enrolment voucher unknown", func(r *roster.Roster) { r.Trainees[1].Enrolments[0].Voucher = "V9" }, `trainees[1] "T2": enrolments[0]: voucher "V9" is not in the roster`},
		{"enrolment voucher of someone else", func(r *roster.Roster) { r.Trainees[1].Enrolments[0].Voucher = "V1" }, `trainees[1] "T2": enrolments[0]: voucher "V1" belongs to someone else`},
		{"fingerprint template empty", func(r *roster.Roster) {
			r.Trainees[0].Fingerprints = append(r.Trainees[0].Fingerprints, roster.Fingerprint{Finger: "left-index"})
		}, `trainees[0] "T1": fingerprints[1]: template is empty`},
		{"face without its model", func(r *roster.Roster) {
			r.Trainees[0].Faces = []roster.Face{{Model: "dlib", ModelSHA256: "5553", Descriptor: make([]byte, 512)}}
		}, `trainees[0] "T1": faces[0]: the model's name and sha256 (64 hex digits) are required`},
		{"face descriptor short", func(r *roster.Roster) {
			r.Trainees[0].Faces = []roster.Face{{Model: "dlib", ModelSHA256: strings.Repeat("ab", 32), Descriptor: make([]byte, 128)}}
		}, `trainees[0] "T1": faces[0]: descriptor is 128 bytes, want 512 (128 float32)`},
		{"card of two trainees", func(r *roster.Roster) { r.Trainees[1].Cards = []string{"CARD-1b"} }, `trainees[1] "T2": card "CARD-1b" is also trainee "T1"'s`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validRoster(t)
			tc.break_(r)
			p := problemsOf(t, r.Validate(testNow))
			want := strings.Split(tc.want, " | ")
			if len(p) != len(want) {
				t.Fatalf("got %d problems %q, want %d: %q", len(p), p, len(want), want)
			}
			for _, w := range want {
				if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("got problems %q, want one containing %q", p, w)
				}
			}
			if _, err := roster.Build(r, testNow); err == nil {
				t.Errorf("Build: got nil error, want the roster refused")
			}
		})
	}
}

// A roster with several problems lists every one of them, not just the first.
func TestValidateListsEveryProblem(t *testing.T) {
	r := validRoster(t)
	r.Version = 0
	r.Institutions[1].City = "3600"
	r.Programmes[0].Hours = 0
	r.Programmes[1].Category = "D"
	r.Sessions[2].End = r.Sessions[2].Start
	r.Sessions[0].SignOutOpens = roster.Duration(-time.Minute)
	r.Sessions[0].SignOutCloses = roster.Duration(-time.Minute)
	r.Vouchers[0].Status = "lost"
	r.Vouchers[1].Holder = r.Vouchers[1].Holder[:17] + "x"
	r.Trainees[0].Name = ""
	r.Trainees[1].Cards = []string{"CARD-1"}
	want := []string{
		"version: must be 1 or more",
		`institutions[1] "0002": city "3600" is not a Shandong code`,
		`programmes[0] "P1": hours must be positive`,
		`programmes[1] "P2": category "D"`,
		`sessions[2] "S2": end must be after start`,
		`sessions[0] "S1-pm": sign_out_opens is negative`,
		`sessions[0] "S1-pm": sign_out_closes is negative`,
		`vouchers[0] "V1": status "lost"`,
		`vouchers[1] "V2": holder id number:`,
		`trainees[0] "T1": name is empty`,
		`trainees[1] "T2": card "CARD-1" is also trainee "T1"'s`,
		// V2's holder is no longer T2's number.
		`trainees[1] "T2": enrolments[1]: voucher "V2" belongs to someone else`,
	}
	err := r.Validate(testNow)
	p := problemsOf(t, err)
	if len(p) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(p), len(want), err)
	}
	for _, w := range want {
		if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no problem contains %q; got:\n%v", w, err)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "roster: 12 problem(s):\n  ") || strings.Count(msg, "\n") != 12 {
		t.Errorf("Error() = %q, want a count line and one problem a line", msg)
	}
	// The same roster is always refused with the same text (it goes into a ledger alarm).
	for range 20 {
		if again := r.Validate(testNow).Error(); again != msg {
			t.Fatalf("Validate is not deterministic:\n%s\nthen\n%s", msg, again)
		}
	}
	// No problem repeats a full ID number.
	for _, tr := range r.Trainees {
		if strings.Contains(msg, tr.IDNumber) {
			t.Errorf("problems repeat the ID number of %s", tr.ID)
		}
	}
}

func TestDecode(t *testing.T) {
	good, err := json.Marshal(validRoster(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"valid", string(good), ""},
		{"valid with trailing whitespace", string(good) + "\n\t ", ""},
		{"unknown top-level field", `{"version":1,"signature":"x"}`, `unknown field "signature"`},
		{"unknown nested field", `{"version":1,"trainees":[{"id":"T1","nickname":"x"}]}`, `unknown field "nickname"`},
		{"unknown session field", `{"version":1,"sessions":[{"id":"S","late":"5m"}]}`, `unknown field "late"`},
		{"trailing object", string(good) + `{"version":2}`, "trailing data"},
		{"trailing garbage", string(good) + ` x`, "trailing data"},
		{"trailing brace", string(good) + `}`, "trailing data"},
		{"trailing bracket", string(good) + `]`, "trailing data"},
		{"truncated", string(good[:len(good)-1]), "roster: decode"},
		{"empty", ``, "roster: decode"},
		{"not an object", `[1,2]`, "roster: decode"},
		{"duration not a string", `{"version":1,"sessions":[{"id":"S","late_after":300}]}`, "duration"},
		{"duration malformed", `{"version":1,"sessions":[{"id":"S","late_after":"5 minutes"}]}`, "duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := roster.Decode([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				if err := r.Validate(testNow); err != nil {
					t.Fatalf("decoded roster: got %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got a roster of version %d, want an error containing %q", r.Version, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %q, want one containing %q", err, tc.wantErr)
			}
			if r != nil {
				t.Errorf("got a roster with the error, want nil")
			}
		})
	}
}

// A roster survives JSON both ways unchanged, windows and all.
func TestDecodeRoundTrip(t *testing.T) {
	want := validRoster(t)
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := roster.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Errorf("round trip changed the roster:\ngot  %s\nwant %s", b2, b)
	}
	if got.Sessions[1].LateAfter != roster.Duration(5*time.Minute) || got.Sessions[1].SignInOpens != 0 {
		t.Errorf("session windows: got late_after %v sign_in_opens %v, want 5m and 0",
			time.Duration(got.Sessions[1].LateAfter), time.Duration(got.Sessions[1].SignInOpens))
	}
	if !strings.Contains(string(b), `"late_after":"5m0s"`) || strings.Contains(string(b), `"sign_in_opens"`) {
		t.Errorf("JSON %s: want late_after as a duration string and zero windows omitted", b)
	}
}

func TestDurationJSON(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 15 * time.Minute, 90 * time.Minute, -5 * time.Minute, 1500 * time.Millisecond} {
		b, err := json.Marshal(roster.Duration(d))
		if err != nil {
			t.Fatalf("marshal %v: %v", d, err)
		}
		if want := `"` + d.String() + `"`; string(b) != want {
			t.Errorf("marshal %v: got %s, want %s", d, b, want)
		}
		var got roster.Duration
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if time.Duration(got) != d {
			t.Errorf("round trip %v: got %v", d, time.Duration(got))
		}
	}
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`"15m"`, 15 * time.Minute, false},
		{`"1h30m"`, 90 * time.Minute, false},
		{`"0"`, 0, false},
		{`900`, 0, true},
		{`"15"`, 0, true},
		{`"quarter"`, 0, true},
		{`null`, 0, false}, // JSON null leaves the field alone, as for any string
	}
	for _, tc := range tests {
		var got roster.Duration
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err != nil) != tc.wantErr {
			t.Errorf("unmarshal %s: got error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && time.Duration(got) != tc.want {
			t.Errorf("unmarshal %s: got %v, want %v", tc.in, time.Duration(got), tc.want)
		}
	}
}

func TestSessionWindows(t *testing.T) {
	start, end := at(9, 0), at(12, 0)
	tests := []struct {
		name                                          string
		s                                             roster.Session
		opens, lateFrom, signInUntil, signOutFrom, cl time.Time
	}{
		{"defaults", roster.Session{Start: start, End: end},
			at(8, 30), at(9, 10), at(10, 0), at(11, 30), at(12, 30)},
		{"overrides", roster.Session{Start: start, End: end,
			SignInOpens: roster.Duration(15 * time.Minute), LateAfter: roster.Duration(time.Minute),
			SignInCloses: roster.Duration(20 * time.Minute), SignOutOpens: roster.Duration(5 * time.Minute),
			SignOutCloses: roster.Duration(45 * time.Minute)},
			at(8, 45), at(9, 1), at(9, 20), at(11, 55), at(12, 45)},
		{"some overridden", roster.Session{Start: start, End: end, LateAfter: roster.Duration(30 * time.Minute)},
			at(8, 30), at(9, 30), at(10, 0), at(11, 30), at(12, 30)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				what      string
				got, want time.Time
			}{
				{"Opens", tc.s.Opens(), tc.opens},
				{"LateFrom", tc.s.LateFrom(), tc.lateFrom},
				{"SignInUntil", tc.s.SignInUntil(), tc.signInUntil},
				{"SignOutFrom", tc.s.SignOutFrom(), tc.signOutFrom},
				{"Closes", tc.s.Closes(), tc.cl},
			} {
				if !c.got.Equal(c.want) {
					t.Errorf("%s: got %s, want %s", c.what, c.got.Format("15:04"), c.want.Format("15:04"))
				}
			}
		})
	}
}

func TestSessionServes(t *testing.T) {
	tests := []struct {
		devices []string
		source  string
		want    bool
	}{
		{nil, "r101", true},
		{nil, "", true},
		{[]string{"r101"}, "r101", true},
		{[]string{"r101", "r102"}, "r102", true},
		{[]string{"r101"}, "r102", false},
		{[]string{"r101"}, "", false},
		{[]string{"r101"}, "R101", false},
	}
	for _, tc := range tests {
		s := roster.Session{Devices: tc.devices}
		if got := s.Serves(tc.source); got != tc.want {
			t.Errorf("devices %v serves %q: got %v, want %v", tc.devices, tc.source, got, tc.want)
		}
	}
}

func TestBuildIndexes(t *testing.T) {
	r := validRoster(t)
	x, err := roster.Build(r, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 2 || x.Version != 3 {
		t.Errorf("got Len %d Version %d, want 2 and 3", x.Len(), x.Version)
	}
	traineeTests := []struct {
		how  string
		got  *roster.Trainee
		want string // trainee ID, "" for nil
	}{
		{"Trainee(T1)", x.Trainee("T1"), "T1"},
		{"Trainee(T2)", x.Trainee("T2"), "T2"},
		{"Trainee(T9)", x.Trainee("T9"), ""},
		{"Trainee by card number", x.Trainee("CARD-1"), ""},
		{"TraineeByIDNumber(T1's)", x.TraineeByIDNumber(r.Trainees[0].IDNumber), "T1"},
		{"TraineeByIDNumber(T2's)", x.TraineeByIDNumber(r.Trainees[1].IDNumber), "T2"},
		{"TraineeByIDNumber(masked)", x.TraineeByIDNumber(roster.MaskID(r.Trainees[0].IDNumber)), ""},
		{"TraineeByCard(CARD-1)", x.TraineeByCard("CARD-1"), "T1"},
		{"TraineeByCard(CARD-1b)", x.TraineeByCard("CARD-1b"), "T1"},
		{"TraineeByCard(CARD-2)", x.TraineeByCard("CARD-2"), "T2"},
		{"TraineeByCard(CARD-9)", x.TraineeByCard("CARD-9"), ""},
		{"TraineeByCard(T1)", x.TraineeByCard("T1"), ""},
	}
	for _, tc := range traineeTests {
		got := ""
		if tc.got != nil {
			got = tc.got.ID
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.how, got, tc.want)
		}
	}
	// The index points into the roster, it does not copy it.
	if x.Trainee("T1") != &r.Trainees[0] {
		t.Errorf("Trainee(T1) is a copy, want a pointer into the roster")
	}
	if v := x.Voucher("V2"); v == nil || v.Kind != roster.General {
		t.Errorf("Voucher(V2): got %+v, want the general voucher", v)
	}
	if v := x.Voucher("V9"); v != nil {
		t.Errorf("Voucher(V9): got %+v, want nil", v)
	}
	if p := x.Programme("P2"); p == nil || p.Institution != "0002" {
		t.Errorf("Programme(P2): got %+v, want P2 of 0002", p)
	}
	if p := x.Programme("P9"); p != nil {
		t.Errorf("Programme(P9): got %+v, want nil", p)
	}
	if in := x.Institution("0001"); in == nil || !in.AcceptsVouchers {
		t.Errorf("Institution(0001): got %+v, want the accepting institution", in)
	}
	if in := x.Institution("0009"); in != nil {
		t.Errorf("Institution(0009): got %+v, want nil", in)
	}
	sessionTests := []struct {
		class string
		want  []string
	}{
		{"C1", []string{"S1-am", "S1-pm"}}, // listed pm first in the roster
		{"C2", []string{"S2"}},
		{"C9", nil},
	}
	for _, tc := range sessionTests {
		var got []string
		for _, s := range x.Sessions(tc.class) {
			got = append(got, s.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Sessions(%s): got %v, want %v", tc.class, got, tc.want)
		}
	}
}

func TestBuildRefusesInvalidRoster(t *testing.T) {
	r := validRoster(t)
	r.Trainees[0].IDNumber = r.Trainees[0].IDNumber[:17] + "Y"
	x, err := roster.Build(r, testNow)
	if x != nil {
		t.Errorf("got an index, want nil")
	}
	if p := problemsOf(t, err); len(p) == 0 {
		t.Fatalf("got %v, want Problems", err)
	}
}
