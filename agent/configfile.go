package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// ConfigError is a problem with the config file, located at a key.
type ConfigError struct {
	File string
	Line int // 0 when the key is not written in the file (a required key missing)
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// ConfigErrors is every problem found in one file.
type ConfigErrors []*ConfigError

// Unwrap lets errors.As reach each *ConfigError.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es ConfigErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// decodeStrict decodes doc into v, refusing unknown keys. It returns the key -> line index of the
// document so that later validation can name lines too.
func decodeStrict(file string, doc []byte, v any) (map[string]int, error) {
	lines, err := keyLines(doc)
	if err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			return nil, &ConfigError{File: file, Line: row, Key: strings.Join(de.Key(), "."), Msg: de.Error()}
		}
		return nil, &ConfigError{File: file, Msg: err.Error()}
	}
	dec := toml.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case err == nil:
		return lines, nil
	case errors.As(err, &strict):
		var es ConfigErrors
		for _, e := range strict.Errors {
			row, _ := e.Position()
			es = append(es, &ConfigError{File: file, Line: row, Key: displayKey(e.Key(), lines, row), Msg: "unknown key (misspelled, or not valid here)"})
		}
		return nil, es
	case errors.As(err, &de):
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		return nil, &ConfigError{File: file, Line: row, Key: displayKey(de.Key(), lines, row), Msg: msg}
	}
	return nil, &ConfigError{File: file, Msg: err.Error()}
}

// displayKey names a key as the user wrote it, with the index of an array-of-tables entry
// ("source[1].baud") when the line index knows it.
func displayKey(k toml.Key, lines map[string]int, row int) string {
	plain := strings.Join(k, ".")
	for key, l := range lines {
		if l == row && stripIndexes(key) == plain {
			return key
		}
	}
	return plain
}

func stripIndexes(key string) string {
	var b strings.Builder
	skip := false
	for _, r := range key {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// keyLines maps every key of a TOML document to the line it is written on. Keys of
// array-of-tables entries are indexed ("source[0].path"); tables map to their header line.
func keyLines(doc []byte) (map[string]int, error) {
	p := unstable.Parser{}
	p.Reset(doc)
	lines := map[string]int{}
	counts := map[string]int{}
	prefix := ""
	lineOf := func(n *unstable.Node) int {
		it := n.Key()
		if it.Next() {
			return p.Shape(it.Node().Raw).Start.Line
		}
		return 0
	}
	keyOf := func(n *unstable.Node) string {
		var parts []string
		it := n.Key()
		for it.Next() {
			parts = append(parts, string(it.Node().Data))
		}
		return strings.Join(parts, ".")
	}
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table:
			prefix = keyOf(n)
			lines[prefix] = lineOf(n)
		case unstable.ArrayTable:
			k := keyOf(n)
			prefix = k + "[" + strconv.Itoa(counts[k]) + "]"
			counts[k]++
			lines[prefix] = lineOf(n)
		case unstable.KeyValue:
			k := keyOf(n)
			if prefix != "" {
				k = prefix + "." + k
			}
			lines[k] = lineOf(n)
		}
	}
	return lines, p.Error()
}

// keysUnder lists the keys written directly under prefix ("source[1]"), sorted.
func keysUnder(lines map[string]int, prefix string) []string {
	var out []string
	for k := range lines {
		if rest, ok := strings.CutPrefix(k, prefix+"."); ok && !strings.Contains(rest, ".") {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out
}

// Duration is a time.Duration written as a string in the config ("150ms", "2m").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration like \"150ms\" or \"2m\": %w", err)
	}
	if v < 0 {
		return errors.New("a duration cannot be negative")
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func readConfigFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

// ConfigKeys lists every key of the config file, as dotted paths ("source.baud"), for the
// documentation test.
func ConfigKeys() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			out = append(out, key)
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(key, ft)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	return out
}
