package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testFlags = map[string]FlagKind{"node-name": Scalar, "node-label": List, "debug": Scalar, "https-listen-port": Scalar, "tls-san": List}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFilesPrecedenceAndAppend(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.yaml")
	write(t, main, "node-name: base\nnode-label: [a=1, b=2]\ndebug: true\nhttps-listen-port: 7443\ntls-san: one\n")
	write(t, main+".d/20-more.yaml", "node-label+: [d=4]\n")
	write(t, main+".d/10-first.yaml", "node-name: first\nnode-label+: c=3\n")
	write(t, main+".d/30-replace.yaml", "tls-san: [two, three]\n")
	write(t, main+".d/notes.txt", "ignored: true\n")
	got, err := LoadFiles(main, false, testFlags)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"node-name":         "first",
		"node-label":        "a=1,b=2,c=3,d=4",
		"debug":             "true",
		"https-listen-port": "7443",
		"tls-san":           "two,three",
	}
	for k, v := range want {
		if strings.Join(got[k], ",") != v {
			t.Errorf("%s = %v, want %s", k, got[k], v)
		}
	}
}

func TestLoadFilesMissing(t *testing.T) {
	dir := t.TempDir()
	if got, err := LoadFiles(filepath.Join(dir, "config.yaml"), false, testFlags); err != nil || len(got) != 0 {
		t.Fatalf("absent default file: %v %v", got, err)
	}
	if _, err := LoadFiles(filepath.Join(dir, "mine.yaml"), true, testFlags); err == nil || !strings.Contains(err.Error(), "mine.yaml") {
		t.Fatalf("absent --config file: %v", err)
	}
	// Drop-ins count even without the main file.
	write(t, filepath.Join(dir, "config.yaml.d", "a.yaml"), "node-name: x\n")
	if got, err := LoadFiles(filepath.Join(dir, "config.yaml"), false, testFlags); err != nil || got["node-name"][0] != "x" {
		t.Fatalf("drop-in alone: %v %v", got, err)
	}
}

func TestLoadFilesRejects(t *testing.T) {
	for content, want := range map[string]string{
		"no-such-flag: 1\n":      `unknown key "no-such-flag"`,
		"node-name: [a, b]\n":    `key "node-name" takes one value`,
		"node-name+: a\n":        `only list keys append`,
		"node-label: {a: 1}\n":   `key "node-label": want a value`,
		"node-name:\n":           `key "node-name": no value`,
		"node-name: [unclosed\n": "config file",
		"- just\n- a list\n":     "config file",
	} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		write(t, path, content)
		_, err := LoadFiles(path, true, testFlags)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: got %v, want %q naming the file", content, err, want)
		}
	}
}

// TestLoadFilesKeepsTheTextAsWritten: YAML 1.1 would read 0640 as the
// number 416, `no` as false and long digit strings as rounded floats; every
// value must reach the flag as the user wrote it.
func TestLoadFilesKeepsTheTextAsWritten(t *testing.T) {
	flags := map[string]FlagKind{"write-kubeconfig-mode": Scalar, "node-name": Scalar, "token": Scalar, "node-label": List, "debug": Bool, "disable-agent": Bool, "cluster-dns": Scalar}
	path := filepath.Join(t.TempDir(), "config.yaml")
	write(t, path, `write-kubeconfig-mode: 0640
node-name: no
token: 123456789012345678901234567890
cluster-dns: 1.50
node-label: [zone=0600, "quoted=off", &a ratio=1e3]
debug: yes
disable-agent: Off
`)
	got, err := LoadFiles(path, true, flags)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"write-kubeconfig-mode": "0640",
		"node-name":             "no",
		"token":                 "123456789012345678901234567890",
		"cluster-dns":           "1.50",
		"node-label":            "zone=0600,quoted=off,ratio=1e3",
		"debug":                 "true",
		"disable-agent":         "false",
	}
	for k, v := range want {
		if strings.Join(got[k], ",") != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The mode as written is the mode the kubeconfig gets.
	s := Server{WriteKubeconfigMode: got["write-kubeconfig-mode"][0]}
	if mode, err := s.KubeconfigMode(); err != nil || mode != 0o640 {
		t.Fatalf("mode %o, %v", mode, err)
	}
	for _, content := range []string{"write-kubeconfig-mode: 0600\n", "write-kubeconfig-mode: '0600'\n"} {
		write(t, path, content)
		if got, err := LoadFiles(path, true, flags); err != nil || got["write-kubeconfig-mode"][0] != "0600" {
			t.Errorf("%q: %v %v", content, got, err)
		}
	}
}

func TestLoadFilesRejectsBadBooleansAndRepeats(t *testing.T) {
	flags := map[string]FlagKind{"debug": Bool, "node-name": Scalar}
	for content, want := range map[string]string{
		"debug: maybe\n":               `key "debug": "maybe": want true or false`,
		"node-name: a\nnode-name: b\n": `key "node-name" given twice`,
		"node-name: [[a]]\n":           "not a nested list",
		"debug: [true, false]\n":       `key "debug" takes one value`,
		"debug+: true\n":               "only list keys append",
		"node-name: &x a\ndebug: *x\n": `key "debug": "a": want true or false`,
		"? [complex, key]\n: value\n":  "a key must be a flag name",
		"just a string\n":              "want keys and values",
	} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		write(t, path, content)
		_, err := LoadFiles(path, true, flags)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: got %v, want %q naming the file", content, err, want)
		}
	}
	for _, empty := range []string{"", "# only a comment\n", "~\n"} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		write(t, path, empty)
		if got, err := LoadFiles(path, true, flags); err != nil || len(got) != 0 {
			t.Errorf("%q: %v %v", empty, got, err)
		}
	}
}
