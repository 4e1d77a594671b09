package label_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
)

// constants returns the string values of the constants of each named type declared in the
// non-test Go files of dir, so a constant added there is seen here without a list to update.
func constants(t *testing.T, dir string, types ...string) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no Go files (%v)", dir, err)
	}
	want := map[string]bool{}
	for _, ty := range types {
		want[ty] = true
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok || !want[id.Name] {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: a %s constant that is not a string literal", fset.Position(v.Pos()), id.Name)
						continue
					}
					s, _ := strconv.Unquote(lit.Value)
					out[id.Name] = append(out[id.Name], s)
				}
			}
		}
	}
	return out
}

// Every kind, reason and flag of the ledger, every method of the drivers and every status of the
// reports has a Chinese and an English label.
func TestEveryCodeHasALabel(t *testing.T) {
	ledgerConsts := constants(t, "../ledger", "Kind", "Reason", "Flag")
	checks := []struct {
		table, pkg, typ string
		codes           []string
		min             int
	}{
		{"kind", "ledger", "Kind", ledgerConsts["Kind"], 7},
		{"reason", "ledger", "Reason", ledgerConsts["Reason"], 20},
		{"flag", "ledger", "Flag", ledgerConsts["Flag"], 10},
		{"method", "drivers", "Method", constants(t, "../../drivers", "Method")["Method"], 5},
		{"status", "report", "Status", constants(t, "../report", "Status")["Status"], 6},
		{"problem", "export", "Code", constants(t, "../export", "Code")["Code"], 14},
	}
	for _, c := range checks {
		if len(c.codes) < c.min {
			t.Errorf("%s.%s: found %d constants, want at least %d (did the parse miss them?)", c.pkg, c.typ, len(c.codes), c.min)
		}
		for _, code := range c.codes {
			if !label.Known(c.table, code) {
				t.Errorf("%s.%s %q has no label: add it to the %s table", c.pkg, c.typ, code, c.table)
			}
		}
	}
	for _, k := range ledgerConsts["Kind"] {
		l := label.Kind(ledger.Kind(k))
		if !hasHan(l.ZH) || l.EN == "" || hasHan(l.EN) {
			t.Errorf("kind %s: got zh %q en %q, want Chinese and English", k, l.ZH, l.EN)
		}
	}
	for _, r := range ledgerConsts["Reason"] {
		if l := label.Reason(ledger.Reason(r)); !hasHan(l.ZH) || l.EN == "" {
			t.Errorf("reason %s: got zh %q en %q", r, l.ZH, l.EN)
		}
	}
	for _, f := range ledgerConsts["Flag"] {
		if l := label.Flag(ledger.Flag(f)); !hasHan(l.ZH) || l.EN == "" {
			t.Errorf("flag %s: got zh %q en %q", f, l.ZH, l.EN)
		}
	}
}

func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

func TestLabels(t *testing.T) {
	cases := []struct{ got, want string }{
		{label.Kind(ledger.SignIn).In(label.ZH), "签到"},
		{label.Kind(ledger.SignIn).In(label.EN), "sign-in"},
		{label.Kind(ledger.SignIn).Coded(label.ZH), "签到 (sign_in)"},
		{label.Flag(ledger.FlagLate).Coded(label.EN), "late"},
		{label.Reason(ledger.ReasonNoSession).String(), "当前无该学员的课次 (no_session)"},
		{label.Kind("from_a_newer_box").Coded(label.ZH), "from_a_newer_box"},
		{label.Method("manual").In(label.ZH), "人工补签"},
		{label.Flags([]ledger.Flag{ledger.FlagLate, ledger.FlagManualOverride}, label.ZH), "迟到 (late)、人工补签 (manual_override)"},
		{label.Flags([]ledger.Flag{ledger.FlagLate, ledger.FlagManualOverride}, label.EN), "late, manual override (manual_override)"},
		{label.Flags(nil, label.ZH), ""},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: got %q, want %q", i, c.got, c.want)
		}
	}
}

func TestParseLang(t *testing.T) {
	for in, want := range map[string]label.Lang{"": label.ZH, "zh": label.ZH, "zh-CN": label.ZH, "ZH-cn": label.ZH, "en": label.EN, "en-US": label.EN} {
		if got, err := label.ParseLang(in); got != want || err != nil {
			t.Errorf("ParseLang(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := label.ParseLang("fr"); err == nil || !strings.HasPrefix(err.Error(), "label: ") {
		t.Errorf("ParseLang(fr): got %v, want a label: error", err)
	}
}

// FuzzParseLang: a ?lang= value from a browser is either a known language or an error, and the
// language returned is always one the labels have.
func FuzzParseLang(f *testing.F) {
	for _, s := range []string{"", "zh", "zh-CN", "en", "en-GB", "fr", "\x00", "ZH_cn"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := label.ParseLang(s)
		if l != label.ZH && l != label.EN {
			t.Fatalf("ParseLang(%q): got %q, want zh-CN or en", s, l)
		}
		if err != nil && l != label.ZH {
			t.Fatalf("ParseLang(%q): an error with %q, want the Chinese default", s, l)
		}
	})
}
