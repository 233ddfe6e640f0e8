package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultConfigFile is read when present; FILE.d/*.yaml follow it.
const DefaultConfigFile = "/etc/kubling/config.yaml"

// FlagKind says how a configuration key is read: every flag of a command
// is a key of the same name.
type FlagKind int

const (
	Scalar FlagKind = iota
	List
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
	raw := map[string]any{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		name, appending := strings.CutSuffix(key, "+")
		kind, ok := flags[name]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q (keys are the command's flag names, see --help)", path, key)
		}
		values, err := scalars(raw[key])
		if err != nil {
			return fmt.Errorf("config file %s: key %q: %w", path, key, err)
		}
		switch {
		case kind == Scalar && appending:
			return fmt.Errorf("config file %s: key %q: only list keys append with +", path, key)
		case kind == Scalar && len(values) != 1:
			return fmt.Errorf("config file %s: key %q takes one value", path, key)
		case appending:
			out[name] = append(out[name], values...)
		default:
			out[name] = values
		}
	}
	return nil
}

// scalars turns a YAML value (a scalar or a list of them) into strings.
func scalars(v any) ([]string, error) {
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		switch x := item.(type) {
		case string:
			out = append(out, x)
		case bool:
			out = append(out, strconv.FormatBool(x))
		case float64:
			out = append(out, strconv.FormatFloat(x, 'f', -1, 64))
		case int64:
			out = append(out, strconv.FormatInt(x, 10))
		case nil:
			return nil, errors.New("no value")
		default:
			return nil, fmt.Errorf("want a value or a list of values, not %T", item)
		}
	}
	return out, nil
}
