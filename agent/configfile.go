package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/kaoqin/kaoqin/drivers"
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

// decoder decodes a config document strictly and key by key, so that every problem of the file
// is found in one pass: an unknown key, a value of the wrong type, a bare number where a duration
// is wanted. Each problem is located by the document's key -> line index.
type decoder struct {
	file  string
	lines map[string]int
	errs  ConfigErrors
}

func (d *decoder) bad(key, format string, a ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: d.line(key), Key: key, Msg: fmt.Sprintf(format, a...)})
}

// line is the line a key is written on, or its table's, or 0.
func (d *decoder) line(key string) int {
	for k := key; k != ""; {
		if l, ok := d.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

var durationType = reflect.TypeOf(drivers.Duration(0))

// table decodes the keys of one table m into the struct v points to. Keys that name a nested
// table are decoded key by key in turn; every other key is decoded on its own.
func (d *decoder) table(prefix string, m map[string]any, v any, skip ...string) {
	rv := reflect.ValueOf(v).Elem()
	fields := tomlFields(rv.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(skip, k) {
			continue
		}
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		idx, ok := fields[k]
		if !ok {
			d.bad(key, "unknown key (misspelled, or not valid here)")
			continue
		}
		f := rv.FieldByIndex(idx)
		if sub, isTable := m[k].(map[string]any); isTable && f.Kind() == reflect.Struct {
			d.table(key, sub, f.Addr().Interface())
			continue
		}
		if f.Type() == durationType {
			if _, isNum := m[k].(int64); isNum {
				d.bad(key, "a bare number; write a duration with its unit, such as \"%ds\" or \"%dms\"", m[k], m[k])
				continue
			}
		}
		doc, err := toml.Marshal(map[string]any{k: m[k]})
		if err != nil {
			d.bad(key, "%v", err)
			continue
		}
		one := reflect.New(rv.Type())
		dec := toml.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		if err := dec.Decode(one.Interface()); err != nil {
			var strict *toml.StrictMissingError
			var de *toml.DecodeError
			switch {
			case errors.As(err, &strict):
				for _, e := range strict.Errors {
					d.bad(prefix+"."+strings.Join(e.Key(), "."), "unknown key (misspelled, or not valid here)")
				}
			case errors.As(err, &de):
				d.bad(key, "%s", strings.TrimPrefix(de.Error(), "toml: "))
			default:
				d.bad(key, "%s", strings.TrimPrefix(err.Error(), "toml: "))
			}
			continue
		}
		f.Set(one.Elem().FieldByIndex(idx))
	}
}

// tomlFields maps the toml tags of a struct type to field index paths. The fields of an embedded
// struct without a tag are the struct's own keys (one driver's config embedding another's).
func tomlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			for k, idx := range tomlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if tag != "" && tag != "-" {
			out[tag] = []int{i}
		}
	}
	return out
}

// resolvePaths makes every drivers.Path field of the struct v points to (and of the structs it
// holds) absolute against dir.
func resolvePaths(v any, dir string) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return
	}
	resolveValue(rv.Elem(), dir)
}

var pathType = reflect.TypeOf(drivers.Path(""))

func resolveValue(rv reflect.Value, dir string) {
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch {
		case !f.CanSet():
		case f.Type() == pathType:
			if p := f.String(); p != "" && !filepath.IsAbs(p) {
				f.SetString(filepath.Join(dir, p))
			}
		case f.Kind() == reflect.Struct:
			resolveValue(f, dir)
		}
	}
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
	var pe *unstable.ParserError
	if err := p.Error(); errors.As(err, &pe) {
		return nil, &syntaxErr{line: p.Shape(p.Range(pe.Highlight)).Start.Line, msg: pe.Message}
	} else if err != nil {
		return nil, err
	}
	return lines, nil
}

// syntaxErr is a TOML syntax error at a line.
type syntaxErr struct {
	line int
	msg  string
}

func (e *syntaxErr) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// Duration is a time.Duration written as a string in the config ("150ms", "2m"); a bare number
// is refused, as is a negative duration.
type Duration = drivers.Duration

func readConfigFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Key: "(file)", Msg: err.Error()}
	}
	return b, nil
}

// ConfigKeys lists every key of the config file, as dotted paths ("source.baud"), with the keys
// of the source tables of the given driver kinds, for the documentation test.
func ConfigKeys(kinds ...string) []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
				walk(prefix, f.Type)
				continue
			}
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
	for _, kind := range kinds {
		if d, err := drivers.Lookup(kind); err == nil {
			walk("source", reflect.TypeOf(d.Config()).Elem())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
