package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultConfigFile is read when present; FILE.d/*.yaml follow it.
const DefaultConfigFile = "/etc/kubling/config.yaml"

// FlagKind says how a configuration key is read: every flag of a command
// is a key of the same name.
type FlagKind int

const (
	Scalar FlagKind = iota
	List
	Bool
)

// FileValues are the settings the configuration files give, by flag name.
// A list's values are in order; a scalar has one value.
type FileValues map[string][]string

// LoadFiles reads path (when it exists, or it must when explicit) and then
// path.d/*.yaml in lexical order. A later file overrides an earlier one's
// key; a list key written "key+" appends to what earlier files gave. Keys
// must be flags of the command (flags maps their names to kinds); an
// unknown key, a list for a scalar, or a malformed file is an error naming
// the file and the key.
func LoadFiles(path string, explicit bool, flags map[string]FlagKind) (FileValues, error) {
	var files []string
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, os.ErrNotExist) || explicit {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	dropins, err := filepath.Glob(filepath.Join(path+".d", "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dropins)
	files = append(files, dropins...)
	out := FileValues{}
	for _, f := range files {
		if err := loadFile(f, flags, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func loadFile(path string, flags map[string]FlagKind, out FileValues) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	pairs, err := keyValues(data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for _, p := range pairs {
		key := p.key.Value
		name, appending := strings.CutSuffix(key, "+")
		kind, ok := flags[name]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q (keys are the command's flag names, see --help)", path, key)
		}
		values, err := scalars(p.value, kind)
		if err != nil {
			return fmt.Errorf("config file %s: key %q: %w", path, key, err)
		}
		switch {
		case kind != List && appending:
			return fmt.Errorf("config file %s: key %q: only list keys append with +", path, key)
		case kind != List && len(values) != 1:
			return fmt.Errorf("config file %s: key %q takes one value", path, key)
		case appending:
			out[name] = append(out[name], values...)
		default:
			out[name] = values
		}
	}
	return nil
}

type keyValue struct{ key, value *yaml.Node }

// keyValues reads a file's top-level mapping as YAML nodes, so every value
// keeps the text the user wrote: `0640` stays 0640 (not 416), `no` stays
// no, long digit strings keep their digits. Keys come sorted, so "key"
// comes before "key+" whatever the file's order.
func keyValues(data []byte) ([]keyValue, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("want keys and values (flag-name: value), not a list or a single value")
	}
	var pairs []keyValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := resolve(root.Content[i])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a key must be a flag name", k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("key %q given twice", k.Value)
		}
		seen[k.Value] = true
		pairs = append(pairs, keyValue{k, root.Content[i+1]})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].key.Value < pairs[j].key.Value })
	return pairs, nil
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// scalars turns a YAML value (a scalar or a list of them) into the strings
// as written. A boolean flag also takes YAML 1.1's yes/no/on/off.
func scalars(n *yaml.Node, kind FlagKind) ([]string, error) {
	n = resolve(n)
	items := []*yaml.Node{n}
	switch n.Kind {
	case yaml.SequenceNode:
		items = n.Content
	case yaml.ScalarNode:
	default:
		return nil, errors.New("want a value or a list of values, not a mapping")
	}
	out := make([]string, 0, len(items))
	for _, item := range items {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode {
			return nil, errors.New("want a value or a list of values, not a nested list or mapping")
		}
		if item.Tag == "!!null" {
			return nil, errors.New("no value")
		}
		v := item.Value
		if kind == Bool {
			b, ok := yamlBools[strings.ToLower(v)]
			if !ok {
				return nil, fmt.Errorf("%q: want true or false", v)
			}
			v = strconv.FormatBool(b)
		}
		out = append(out, v)
	}
	return out, nil
}

// yamlBools are the booleans of YAML 1.1 (which users write) and 1.2.
var yamlBools = map[string]bool{
	"true": true, "yes": true, "y": true, "on": true,
	"false": false, "no": false, "n": false, "off": false,
}
