package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

var fuzzFlags = map[string]FlagKind{"node-name": Scalar, "node-label": List, "debug": Bool, "tls-san": List, "https-listen-port": Scalar}

// The values earlier files gave, which one file's keys replace or extend.
var fuzzPrior = FileValues{"node-name": {"prior"}, "node-label": {"p=1", "p=2"}, "debug": {"false"}, "tls-san": {"prior.example"}}

// FuzzLoadFile: one configuration file's bytes, read on top of what earlier
// files gave. It loads or fails naming the file, never panics, and when it
// loads: only flag names are keys; a scalar or boolean has one value, a
// boolean is "true" or "false"; each key is left as it was, replaced, or
// (a list only) extended by what the file alone gives; the result does not
// depend on map order (the same file reads the same twice).
func FuzzLoadFile(f *testing.F) {
	for _, s := range []string{
		"node-name: base\nnode-label: [a=1, b=2]\ndebug: true\nhttps-listen-port: 7443\ntls-san: one\n",
		"node-label+: [c=3]\nnode-label: [a=1]\n",
		"node-label+: c=3\n",
		"https-listen-port: 0640\nnode-name: 00123456789012345678901234567890\n",
		"debug: no\n", "debug: On\n", "debug: 1\n", "debug: [true]\n",
		"node-name: !!binary aGVsbG8=\n",
		"node-name: !!str 12\n",
		"node-name: &a x\ntls-san: *a\n",
		"a: &l [x, y]\n",
		"tls-san: &l [x, y]\nnode-label: *l\n",
		"node-label: [&x a, *x, [nested]]\n",
		"<<: {node-name: x}\n",
		"? [node-name]\n: x\n",
		"? node-name\n: x\n",
		"node-name: x\nnode-name: y\n",
		"node-name:\n",
		"node-name: ~\n",
		"node-label: [a, null]\n",
		"node-name: [a, b]\n",
		"node-name+: a\n",
		"+: a\n", "\"\": a\n",
		"node-label: {a: 1}\n",
		"- just\n- a list\n",
		"just a scalar\n",
		"", "---\n", "~\n", "# only a comment\n", "---\n---\n",
		"node-name: a\n---\nnode-name: b\n",
		"node-name: [unclosed\n",
		"node-name: \"\\x00\\t\\u2028\"\n",
		"node-name: |\n  two\n  lines\n",
		"\ufeffnode-name: bom\n",
		"{\"node-name\": \"json\", \"tls-san\": [\"a\", \"b\"]}",
		"node-name: *undefined\n",
		"&a node-name: x\n",
		"!!map {node-name: x}\n",
		"%YAML 1.1\n---\nnode-name: x\n",
		strings.Repeat("[", 10000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		alone := FileValues{}
		errAlone := loadFile(path, fuzzFlags, alone)
		out := clone(fuzzPrior)
		err := loadFile(path, fuzzFlags, out)
		if (err == nil) != (errAlone == nil) {
			t.Fatalf("the file loads alone (%v) but not on earlier files (%v), or the other way round", errAlone, err)
		}
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		again := clone(fuzzPrior)
		if err := loadFile(path, fuzzFlags, again); err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("read twice: %v then %v (%v)", out, again, err)
		}
		for key, values := range out {
			kind, ok := fuzzFlags[key]
			if !ok {
				t.Fatalf("key %q is no flag", key)
			}
			if kind != List && len(values) != 1 {
				t.Fatalf("%s (not a list) has %d values", key, len(values))
			}
			if kind == Bool && values[0] != "true" && values[0] != "false" {
				t.Fatalf("boolean %s = %q", key, values[0])
			}
			prior, own := fuzzPrior[key], alone[key]
			switch {
			case slices.Equal(values, prior) && own == nil:
			case slices.Equal(values, own) && own != nil:
			case kind == List && slices.Equal(values, append(slices.Clone(prior), own...)):
			default:
				t.Fatalf("%s = %q: neither kept (%q), replaced nor extended by the file's %q", key, values, prior, own)
			}
		}
		for key := range alone {
			if _, ok := out[key]; !ok {
				t.Fatalf("key %q read alone but not on earlier files", key)
			}
		}
	})
}

// plainSafe values can be written unquoted in a block: YAML reads them as
// plain scalars, and kubling must hand back the text, not what YAML's types
// make of it (0640, no, 1e3, 2001-01-01, a long number).
var plainSafe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/=+@-]*$`)

var yamlNulls = map[string]bool{"null": true, "Null": true, "NULL": true}

// FuzzConfigValue: a value written to a configuration file comes back as
// the exact text written. It is written quoted (as yaml.v3 writes it), and
// unquoted where YAML allows, as a scalar key, as a list, and as a drop-in's
// "key+:" after the main file's list, read through LoadFiles.
func FuzzConfigValue(f *testing.F) {
	for _, v := range []string{
		"0640", "0x1F", "1e3", "+1", "-0", ".inf", ".nan", "no", "off", "yes", "y", "n", "true", "True",
		"null", "~", "", " ", "2001-01-01", "12:30:00", "123456789012345678901234567890", "1_000",
		"a=b", "key=value:NoSchedule", "node.kubernetes.io/role=x", "a: b", "a #b", "#x", "- x", "[x]", "{x}",
		"*x", "&x", "!x", "|", ">", "'", "\"", "@x", "`x", "%x", "x\n", "\ty", "line1\nline2", "tail \n",
		"\x00", "\x7f", "\u2028", "\ufeff", "é", "日本", "\xff",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return // YAML holds text only (yaml.v3 writes other bytes as !!binary)
		}
		dir := t.TempDir()
		check := func(content string, key string, want []string, wantErr bool) {
			t.Helper()
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadFiles(path, true, fuzzFlags)
			if wantErr {
				if err == nil {
					t.Fatalf("%q: loaded %q, want an error", content, got[key])
				}
				return
			}
			if err != nil || !slices.Equal(got[key], want) {
				t.Fatalf("%q: got %q (%v), want %q", content, got[key], err, want)
			}
		}
		check(marshal(t, map[string]any{"node-name": v}), "node-name", []string{v}, false)
		check(marshal(t, map[string]any{"tls-san": []string{v, v}}), "tls-san", []string{v, v}, false)
		if plainSafe.MatchString(v) {
			check("node-name: "+v+"\n", "node-name", []string{v}, yamlNulls[v])
			check("tls-san:\n  - first\n  - "+v+"\n", "tls-san", []string{"first", v}, yamlNulls[v])
			b, isBool := yamlBools[strings.ToLower(v)]
			check("debug: "+v+"\n", "debug", []string{strconv.FormatBool(b)}, !isBool)
		}
		// A drop-in appends to the main file's list.
		if err := os.MkdirAll(filepath.Join(dir, "config.yaml.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.yaml.d", "50-more.yaml"), []byte(marshal(t, map[string]any{"tls-san+": []string{v}})), 0o600); err != nil {
			t.Fatal(err)
		}
		check(marshal(t, map[string]any{"tls-san": []string{"main"}, "node-name": v}), "tls-san", []string{"main", v}, false)
	})
}

func clone(v FileValues) FileValues {
	out := FileValues{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// marshal writes a file as yaml.v3 does, quoting where YAML needs it.
func marshal(t *testing.T, doc map[string]any) string {
	t.Helper()
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
