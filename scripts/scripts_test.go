package scripts

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/datadir"
)

// TestMain lets the test binary stand in for a running kubling (see dummy).
func TestMain(m *testing.M) {
	if os.Getenv("KUBLING_SCRIPTS_TEST_DUMMY") != "" {
		dummy()
		return
	}
	os.Exit(m.Run())
}

// dummy is a process that looks like a kubling to killall: started through
// a symlink named kubling with the arguments of `kubling server|agent`, it
// holds KUBLING_SCRIPTS_TEST_HOLD open (as kubling holds its data dir, its
// lock) and sleeps until it is killed.
func dummy() {
	if dir := os.Getenv("KUBLING_SCRIPTS_TEST_HOLD"); dir != "" {
		f, err := os.Open(dir)
		if err != nil {
			os.Exit(2)
		}
		defer f.Close()
	}
	time.Sleep(time.Hour)
}

// dirsFunc cuts the kubling_dirs shell function out of a script.
func dirsFunc(t *testing.T, script string) string {
	t.Helper()
	start := strings.Index(script, "kubling_dirs() {")
	end := strings.Index(script[max(start, 0):], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatal("no kubling_dirs function in the script")
	}
	return script[start : start+end+3]
}

// shFuncs cuts the named shell functions (`name() {` … a line `}`, or a
// one-line `name() { …; }`) out of a script; a here-document's lines in a
// function are not taken for its end.
func shFuncs(t *testing.T, script string, names ...string) string {
	t.Helper()
	lines := strings.Split(script, "\n")
	var b strings.Builder
	for _, name := range names {
		start := -1
		for i, line := range lines {
			if strings.HasPrefix(line, name+"() {") {
				start = i
				break
			}
		}
		if start < 0 {
			t.Fatalf("no function %s in the script", name)
		}
		if strings.HasSuffix(lines[start], "}") {
			b.WriteString(lines[start] + "\n")
			continue
		}
		end, heredoc := -1, ""
		for i := start + 1; i < len(lines) && end < 0; i++ {
			switch line := lines[i]; {
			case heredoc != "":
				if line == heredoc {
					heredoc = ""
				}
			case strings.Contains(line, "<<"):
				heredoc = strings.Trim(strings.Fields(line[strings.Index(line, "<<")+2:])[0], `"'-`)
			case line == "}":
				end = i
			}
		}
		if end < 0 {
			t.Fatalf("function %s has no end", name)
		}
		b.WriteString(strings.Join(lines[start:end+1], "\n") + "\n")
	}
	return b.String()
}

func readScript(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shQuote quotes s as one sh word.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// cleanEnv is the test's environment without any KUBLING_ setting, so the
// scripts see only what a test gives them.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBLING_") && !strings.HasPrefix(kv, "INSTALL_KUBLING_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// shells are the POSIX shells the scripts must work in: dash (Debian's sh)
// and BusyBox (sh and the awk, sed, sort … applets), where present.
func shells(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{"dash": {"PATH=" + os.Getenv("PATH")}}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return out
	}
	dir := t.TempDir()
	for _, applet := range []string{"sh", "awk", "sed", "sort", "tr", "head", "cut", "realpath", "readlink", "sha256sum", "cat", "grep", "gzip", "xz"} {
		if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	out["busybox"] = []string{"PATH=" + dir + ":" + os.Getenv("PATH")}
	return out
}

// sh runs script with sh (the first PATH entry's) as `sh -c script sh args…`.
func sh(t *testing.T, env []string, dir, script string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			if lp, err := lookPathIn("sh", p); err == nil {
				cmd.Path = lp
			}
		}
	}
	cmd.Env = cleanEnv(env...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func lookPathIn(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// TestScriptsNameTheDirsAsKublingDoes runs each script's kubling_dirs with
// /bin/sh and compares it with what kubling makes of the same --data-dir
// (absolute, clean; pkg/datadir's run dir), so killall and uninstall clean
// the folders the running kubling uses.
func TestScriptsNameTheDirsAsKublingDoes(t *testing.T) {
	for name, script := range map[string]string{"kubling-killall.sh": Killall, "kubling-uninstall.sh": UninstallBody} {
		fn := dirsFunc(t, script)
		for _, given := range []string{"/var/lib/kubling", "/var/lib/kubling/", "/var/lib//kubling", "/tmp/kubling-e2e-123", "/srv/data dir/../kubling/", "relative/data"} {
			out, err := exec.Command("sh", "-c", fn+`kubling_dirs "$1"; echo "$DATA_DIR"; echo "$RUN_DIR"`, "sh", given).Output()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			abs, err := filepath.Abs(given)
			if err != nil {
				t.Fatal(err)
			}
			want := abs + "\n" + datadir.New(abs).RunDir()
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("%s: kubling_dirs %q gave\n%s\nkubling uses\n%s", name, given, got, want)
			}
		}
	}
}

// TestDataDirChecksAgree runs data_dir_problem of install.sh, the uninstall
// script and killall (each script must stand alone, so each has its copy)
// on dangerous and ordinary data dirs: all refuse the same ones, with one
// line, and clean_path cleans as Go does.
func TestDataDirChecksAgree(t *testing.T) {
	tmp := t.TempDir()
	for link, target := range map[string]string{"to-root": "/", "to-usr": "/usr", "to-srv": "/srv/kubling"} {
		if err := os.Symlink(target, filepath.Join(tmp, link)); err != nil {
			t.Fatal(err)
		}
	}
	refused := []string{"", "relative", "./x", "/", "//", "/.", "/usr", "/usr/", "/usr/lib", "/usr/local", "/usr/local/bin",
		"/var", "/var/lib", "/var/lib/kubling/..", "/var/log/", "/etc", "/etc/kubling", "/home", "/home/alice", "/root",
		"/tmp", "/opt", "/run", "/boot", "/proc/1", "/sys/fs", "/dev", "/dev/shm", "/srv",
		"/srv/a\nb", "/srv/a\tb", tmp + "/to-root", tmp + "/to-usr", tmp + "/to-root/var"}
	allowed := []string{"/var/lib/kubling", "/var/lib/kubling/", "/var/lib//kubling", "/srv/kubling", "/srv/data dir/it's",
		"/home/alice/kubling", "/tmp/kubling-e2e-1", "/opt/kubling", "/data", "/dev/shm/kubling", "/mnt/disk", tmp + "/to-srv"}
	for name, script := range map[string]string{"install.sh": readScript(t, "install.sh"), "kubling-uninstall.sh": UninstallBody, "kubling-killall.sh": Killall} {
		fns := shFuncs(t, script, "clean_path", "resolve", "data_dir_problem")
		for shell, env := range shells(t) {
			for _, dir := range append(append([]string{}, refused...), allowed...) {
				out, _, err := sh(t, env, tmp, fns+`data_dir_problem "$1"`, dir)
				if err != nil {
					t.Fatalf("%s (%s): data_dir_problem %q: %v", name, shell, dir, err)
				}
				isRefused := false
				for _, r := range refused {
					isRefused = isRefused || r == dir
				}
				switch {
				case isRefused && (out == "" || strings.Count(out, "\n") != 1):
					t.Errorf("%s (%s): data dir %q not refused with one line: %q", name, shell, dir, out)
				case !isRefused && out != "":
					t.Errorf("%s (%s): data dir %q refused: %q", name, shell, dir, out)
				}
			}
			for _, p := range []string{"/", "//", "/a/./b//c/", "/a/../../b", "/srv/data dir/../it's/x/..", "/*/x"} {
				out, _, err := sh(t, env, tmp, fns+`clean_path "$1"`, p)
				if want := filepath.Clean(p) + "\n"; err != nil || out != want {
					t.Errorf("%s (%s): clean_path %q = %q %v, want %q", name, shell, p, out, err, want)
				}
			}
		}
	}
}

// TestInstallRefusesDangerousDataDirs runs install.sh itself with a data
// dir uninstall must never delete (from KUBLING_DATA_DIR or a --data-dir in
// INSTALL_KUBLING_EXEC): one error line, exit 1, and nothing made (not even
// the bin dir). A good data dir gets further (to the missing binary here).
func TestInstallRefusesDangerousDataDirs(t *testing.T) {
	requireRoot(t, "install.sh refuses to run as another user")
	for _, c := range []struct {
		env  []string
		want string // in the error line; "" for no data dir error
	}{
		{[]string{"KUBLING_DATA_DIR=/"}, "KUBLING_DATA_DIR: refusing the data dir /: / is a system folder"},
		{[]string{"KUBLING_DATA_DIR="}, "KUBLING_DATA_DIR: the data dir is empty"},
		{[]string{"KUBLING_DATA_DIR=var/lib/kubling"}, "not an absolute path"},
		{[]string{"KUBLING_DATA_DIR=/var/lib/kubling/.."}, "/var/lib is a system folder"},
		{[]string{"INSTALL_KUBLING_EXEC=--node-name a --data-dir /usr"}, "--data-dir in INSTALL_KUBLING_EXEC: refusing the data dir /usr"},
		{[]string{"KUBLING_DATA_DIR=/srv/kubling", "INSTALL_KUBLING_EXEC=-d=/home"}, "refusing the data dir /home"},
		{[]string{"INSTALL_KUBLING_EXEC=--data-dir="}, "the data dir is empty"},
		{[]string{"INSTALL_KUBLING_EXEC=--data-dir"}, "the data dir is empty"},
		{[]string{"INSTALL_KUBLING_EXEC=--data-dir 'x y'"}, "the data dir x y is not an absolute path"},
		{[]string{"INSTALL_KUBLING_EXEC=--data-dir /srv/k\n--debug"}, "must not contain newlines"},
		{[]string{"KUBLING_DATA_DIR=/", "INSTALL_KUBLING_EXEC=--data-dir=/srv/kubling"}, ""}, // the flag wins, as in kubling
		{[]string{"KUBLING_DATA_DIR=/srv/kubling"}, ""},
	} {
		tmp := t.TempDir()
		bin := filepath.Join(tmp, "bin")
		env := append([]string{"INSTALL_KUBLING_BIN_DIR=" + bin, "INSTALL_KUBLING_BIN=" + filepath.Join(tmp, "absent")}, c.env...)
		cmd := exec.Command("sh", "install.sh")
		cmd.Env = cleanEnv(env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			t.Fatalf("%q: install.sh succeeded:\n%s", c.env, stdout.String())
		}
		if c.want == "" {
			if strings.Contains(stderr.String(), "data dir") || !strings.Contains(stderr.String(), "is not a file") {
				t.Errorf("%q: want the data dir taken, got %q", c.env, stderr.String())
			}
			continue
		}
		if !strings.Contains(stderr.String(), c.want) || strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%q: want one error line with %q, got stdout %q stderr %q", c.env, c.want, stdout.String(), stderr.String())
		}
		if _, err := os.Lstat(bin); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q: the bin dir was made before the data dir was refused", c.env)
		}
	}
}

// systemdExec parses an ExecStart= value the way systemd does
// (systemd.syntax(7), systemd.service(5)): specifiers first (%% is %, any
// other % a specifier), then words split at whitespace with "…" and '…'
// quotes and C escapes (in and out of quotes), then $$ is $ in each word
// (a $NAME or ${NAME} would be a variable). An unquoted lone ; would end
// the command. It reports anything that would not give the literal words.
func systemdExec(value string) ([]string, error) {
	var s strings.Builder
	for i := 0; i < len(value); i++ {
		if value[i] != '%' {
			s.WriteByte(value[i])
			continue
		}
		if i+1 < len(value) && value[i+1] == '%' {
			s.WriteByte('%')
			i++
			continue
		}
		return nil, fmt.Errorf("specifier %q would be expanded", value[i:min(i+2, len(value))])
	}
	p := s.String()
	var words []string
	for {
		p = strings.TrimLeft(p, " \t")
		if p == "" {
			break
		}
		if p == ";" || strings.HasPrefix(p, "; ") {
			return nil, errors.New("an unquoted ; would separate commands")
		}
		var w strings.Builder
		quote := byte(0)
		for p != "" {
			c := p[0]
			if quote == 0 && (c == ' ' || c == '\t') {
				break
			}
			p = p[1:]
			switch {
			case c == '\\':
				if p == "" {
					return nil, errors.New("a trailing backslash")
				}
				e := p[0]
				p = p[1:]
				switch e {
				case '\\', '"', '\'', ' ':
					w.WriteByte(e)
				case 'n':
					w.WriteByte('\n')
				case 't':
					w.WriteByte('\t')
				default:
					return nil, fmt.Errorf("escape \\%c not handled by this parser", e)
				}
			case quote != 0 && c == quote:
				quote = 0
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			default:
				w.WriteByte(c)
			}
		}
		if quote != 0 {
			return nil, errors.New("an unterminated quote")
		}
		word := w.String()
		var out strings.Builder
		for i := 0; i < len(word); i++ {
			if word[i] != '$' {
				out.WriteByte(word[i])
				continue
			}
			if i+1 < len(word) && word[i+1] == '$' {
				out.WriteByte('$')
				i++
				continue
			}
			if i+1 < len(word) && (word[i+1] == '{' || word[i+1] == '_' || (word[i+1]|0x20 >= 'a' && word[i+1]|0x20 <= 'z')) {
				return nil, fmt.Errorf("variable %q would be expanded", word[i:])
			}
			out.WriteByte('$')
		}
		words = append(words, out.String())
	}
	return words, nil
}

// TestInstallerKeepsEachWordOfTheCommand renders the kubling command line
// of install.sh for systemd (the unit's ExecStart), OpenRC (the service
// script, sourced and evaluated as openrc-run's supervise-daemon start does)
// and a host with neither (the printed command, evaluated by sh), for
// INSTALL_KUBLING_EXEC values full of $, `, %, quotes, backslashes, globs,
// ; and spaces. Parsed back, each gives exactly the words the user wrote,
// and nothing in them runs: no `touch pwned` ever creates pwned.
func TestInstallerKeepsEachWordOfTheCommand(t *testing.T) {
	install := readScript(t, "install.sh")
	fns := shFuncs(t, install, "info", "warn", "fatal", "quote", "setup_exec", "exec_words", "exec_secret", "command_words", "systemd_words", "sh_words", "systemd_unit", "openrc_service")
	nasty := []string{"--node-label", "a=b  c", "$(touch pwned)", "`touch pwned`", "$HOME", "${HOME}", "$", "$$", "%h", "100%", "%%",
		`back\slash`, `\`, `\\"`, `dq"uote`, "sq'uote", "'", "x' ; touch pwned; '", ";", "a;touch pwned", "", "*", "?", "[ab]", "~", "~root",
		"--kubelet-arg=cgroup-root=/kubling-x", "ünïcode", "#hash", "a=b", "&", "|", "<x", ">pwned", "{a,b}", "!", "-", "--"}
	var quoted []string
	for _, w := range nasty {
		quoted = append(quoted, shQuote(w))
	}
	cases := []struct {
		exec  string
		words []string
	}{
		{strings.Join(quoted, " "), nasty},
		{"", nil},
		{"   --a   --b  ", []string{"--a", "--b"}},
		{`--node-label "a=b c" --x=\$y`, []string{"--node-label", "a=b c", "--x=$y"}},
		{"$(touch pwned) `touch pwned` $HOME", []string{"$(touch", "pwned)", "`touch", "pwned`", "$HOME"}},
		{`"a"'b'c\ d "" ''`, []string{"abc d", "", ""}},
		{`"x\"y\\z\q\$\` + "`" + `" '\n'`, []string{`x"y\z\q$` + "`", `\n`}},
		{"--kubelet-arg=cgroup-root=/kubling-iserver", []string{"--kubelet-arg=cgroup-root=/kubling-iserver"}},
	}
	for shell, env := range shells(t) {
		for _, c := range cases {
			dir := t.TempDir()
			for _, f := range []string{"a", "b", "ab"} { // for globs to match, were they expanded
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fake := filepath.Join(dir, "fakebin")
			if err := os.MkdirAll(fake, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fake, "supervise-daemon"), []byte("#!/bin/sh\nfor a; do printf '=%s\\n' \"$a\"; done\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			render := fns + `set -eu
BIN_DIR=/usr/local/bin MODE=server NAME=kubling ENV_FILE=/etc/kubling/kubling.env
setup_exec
systemd_unit >unit
openrc_service >service
command_words | sh_words >start
`
			_, stderr, err := sh(t, append(env, "INSTALL_KUBLING_EXEC="+c.exec), dir, render)
			if err != nil {
				t.Fatalf("%s: rendering %q: %v\n%s", shell, c.exec, err, stderr)
			}
			want := append([]string{"/usr/local/bin/kubling", "server"}, c.words...)

			unit, _ := os.ReadFile(filepath.Join(dir, "unit"))
			var execStart string
			for _, line := range strings.Split(string(unit), "\n") {
				if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
					execStart = v
				}
			}
			if c.exec == "--kubelet-arg=cgroup-root=/kubling-iserver" && execStart != "/usr/local/bin/kubling server "+c.exec {
				t.Errorf("%s: plain words are quoted: ExecStart=%s", shell, execStart)
			}
			if got, err := systemdExec(execStart); err != nil || !equalWords(got, want) {
				t.Errorf("%s: INSTALL_KUBLING_EXEC=%s\nExecStart=%s\nsystemd reads %q (%v)\nwant %q", shell, c.exec, execStart, got, err, want)
			}

			// openrc-run sources the script, then (supervise-daemon.sh):
			// eval supervise-daemon "$RC_SVCNAME" --start … $command -- $command_args $command_args_foreground
			openrc := `. ./service
eval supervise-daemon "kubling" --start $command -- $command_args $command_args_foreground`
			out, stderr, err := sh(t, append(env, "PATH="+fake+":"+envPath(env)), dir, openrc)
			got := parseEq(out)
			if err != nil || len(got) < 4 || !equalWords(got[4:], want[1:]) || got[2] != want[0] {
				service, _ := os.ReadFile(filepath.Join(dir, "service"))
				t.Errorf("%s: INSTALL_KUBLING_EXEC=%s\n%s\nOpenRC runs %q (%v %s)\nwant %q", shell, c.exec, service, got, err, stderr, want)
			}

			out, stderr, err = sh(t, env, dir, `eval "set -- $(cat start)"; for a; do printf '=%s\n' "$a"; done`)
			if got := parseEq(out); err != nil || !equalWords(got, want) {
				start, _ := os.ReadFile(filepath.Join(dir, "start"))
				t.Errorf("%s: INSTALL_KUBLING_EXEC=%s\nstart command %s\nsh runs %q (%v %s)\nwant %q", shell, c.exec, start, got, err, stderr, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Fatalf("%s: INSTALL_KUBLING_EXEC=%s ran a command", shell, c.exec)
			}
		}

		// What cannot be kept exactly is refused, with one line.
		for _, bad := range []string{"--a\n--b", "--a\t--b", "--x=\r", "'open", `"open`, `"a\"`, `trailing\`} {
			out, stderr, err := sh(t, append(env, "INSTALL_KUBLING_EXEC="+bad), t.TempDir(), fns+"setup_exec; echo rendered")
			if err == nil || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "INSTALL_KUBLING_EXEC") {
				t.Errorf("%s: INSTALL_KUBLING_EXEC=%q: want one error line, got %v %q %q", shell, bad, err, out, stderr)
			}
		}
	}
}

// A secret in INSTALL_KUBLING_EXEC lands in the world-readable unit file:
// the installer says so (one warning line) and names the flag, never the
// secret; other flags pass quietly.
func TestInstallerWarnsOfSecretsInTheCommand(t *testing.T) {
	install := readScript(t, "install.sh")
	fns := shFuncs(t, install, "info", "warn", "fatal", "setup_exec", "exec_words", "exec_secret")
	for shell, env := range shells(t) {
		for exec, flag := range map[string]string{
			"--token KL1abc::s3cret":                                     "--token",
			"--node-name a -t=s3cret":                                    "-t",
			"--agent-token s3cret":                                       "--agent-token",
			"--datastore-endpoint postgres://kubling:s3cret@db/k":        "--datastore-endpoint",
			"--datastore-endpoint=mysql://kubling:s3cret@tcp(db:3306)/k": "--datastore-endpoint",
			"--datastore-endpoint 'postgres://db/k?password=s3cret'":     "--datastore-endpoint",
			"--datastore-endpoint https://10.0.0.1:2379 --node-name t":   "",
			"--token-file /etc/kubling/token --node-label a=b":           "",
			"": "",
		} {
			out, stderr, err := sh(t, append(env, "INSTALL_KUBLING_EXEC="+exec), t.TempDir(), fns+"set -eu\nsetup_exec\necho rendered\n")
			if err != nil || out != "rendered\n" {
				t.Errorf("%s: %q: %v %q %q", shell, exec, err, out, stderr)
				continue
			}
			if flag == "" {
				if stderr != "" {
					t.Errorf("%s: %q: warned %q", shell, exec, stderr)
				}
				continue
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "warning: INSTALL_KUBLING_EXEC gives "+flag+" a secret") || strings.Contains(stderr, "s3cret") {
				t.Errorf("%s: %q: want one warning naming %s, got %q", shell, exec, flag, stderr)
			}
		}
	}
}

func envPath(env []string) string {
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			return p
		}
	}
	return os.Getenv("PATH")
}

// parseEq reads the "=word" lines a test script prints, one a word.
func parseEq(out string) []string {
	var words []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if w, ok := strings.CutPrefix(line, "="); ok {
			words = append(words, w)
		}
	}
	return words
}

func equalWords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUninstallHeaderQuotesPaths writes the settings install.sh puts at
// the top of kubling-uninstall.sh for a data dir full of quotes, $(…) and
// spaces: sourced, they give back the same values, and nothing runs.
func TestUninstallHeaderQuotesPaths(t *testing.T) {
	fns := shFuncs(t, readScript(t, "install.sh"), "quote", "uninstall_header")
	for shell, env := range shells(t) {
		dir := t.TempDir()
		dataDir := dir + `/it's $(touch pwned) "quoted" \ ` + "`touch pwned`'"
		_, stderr, err := sh(t, env, dir, fns+`BIN_DIR=/usr/local/bin NAME=kubling SYSTEM=systemd DATA_DIR=$1; uninstall_header >header`, dataDir)
		if err != nil {
			t.Fatalf("%s: %v %s", shell, err, stderr)
		}
		out, stderr, err := sh(t, env, dir, `. ./header; printf '=%s\n' "$BIN_DIR" "$SERVICE_NAME" "$SERVICE_SYSTEM" "$DATA_DIR"`)
		want := []string{"/usr/local/bin", "kubling", "systemd", dataDir}
		if got := parseEq(out); err != nil || !equalWords(got, want) {
			header, _ := os.ReadFile(filepath.Join(dir, "header"))
			t.Errorf("%s: header\n%s\ngives %q (%v %s), want %q", shell, header, got, err, stderr, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Fatalf("%s: sourcing the header ran a command", shell)
		}
	}
}

// uninstallScript is kubling-uninstall.sh as install.sh writes it.
func uninstallScript(binDir, system, dataDir string) string {
	return "#!/bin/sh\nBIN_DIR=" + shQuote(binDir) + "\nSERVICE_NAME='kubling'\nSERVICE_SYSTEM=" + shQuote(system) +
		"\nDATA_DIR=" + shQuote(dataDir) + "\n" + UninstallBody
}

// TestUninstallRefusesDangerousDataDirs runs kubling-uninstall.sh with data
// dirs it must never delete. rm and umount are stand-ins that only log (so
// even a broken script deletes nothing here) and killall is a stand-in that
// leaves a mark: the script must stop with one line before any of them.
func TestUninstallRefusesDangerousDataDirs(t *testing.T) {
	requireRoot(t, "kubling-uninstall.sh refuses to run as another user")
	tmp := t.TempDir()
	if err := os.Symlink("/", filepath.Join(tmp, "to-root")); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(tmp, "fakebin")
	log := filepath.Join(tmp, "log")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"rm", "umount", "systemctl", "rc-service", "rc-update"} {
		if err := os.WriteFile(filepath.Join(fake, cmd), []byte("#!/bin/sh\necho \""+cmd+" $*\" >>"+shQuote(log)+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kubling-killall.sh"), []byte("#!/bin/sh\necho killall >>"+shQuote(log)+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dataDir := range []string{"/", "", "relative/kubling", "/usr", "/var/lib/kubling/..", "/home/alice", "/etc", tmp + "/to-root", "/srv/a\nb"} {
		os.Remove(log)
		script := filepath.Join(tmp, "kubling-uninstall.sh")
		if err := os.WriteFile(script, []byte(uninstallScript(bin, "systemd", dataDir)), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", script)
		cmd.Env = cleanEnv("PATH=" + fake + ":" + os.Getenv("PATH"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		logged, _ := os.ReadFile(log)
		if err == nil || stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "nothing removed") || len(logged) != 0 {
			t.Errorf("data dir %q: want one error line and nothing done, got %v stdout %q stderr %q; done:\n%s", dataDir, err, stdout.String(), stderr.String(), logged)
		}
	}
}

// isolated runs a test script as root in a mount and network namespace of
// its own, with /run a fresh tmpfs and /etc an overlay, so what killall and
// uninstall remove there (/run/kubling-*, /run/flannel, /etc/kubling,
// interfaces, iptables rules) is never the host's. It kills every process
// whose command line names tmp when the test ends.
func isolated(t *testing.T, tmp, script string, args ...string) string {
	t.Helper()
	requireRoot(t, "the test makes mount and network namespaces")
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare is missing: install util-linux (scripts/deps.sh test does)")
	}
	t.Cleanup(func() { killMentioning(tmp) })
	setup := `set -u
export LC_ALL=C
tmp=$1
shift
mount -t tmpfs tmpfs /run || exit 1
mkdir -p "$tmp/ovl" && mount -t tmpfs tmpfs "$tmp/ovl" && mkdir "$tmp/ovl/up" "$tmp/ovl/work" &&
	mount -t overlay overlay -o "lowerdir=/etc,upperdir=$tmp/ovl/up,workdir=$tmp/ovl/work" /etc || exit 1
`
	cmd := exec.Command("unshare", append([]string{"--mount", "--net", "--fork", "--propagation", "private", "sh", "-c", setup + script, "sh", tmp}, args...)...)
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test script: %v\n%s", err, out)
	}
	return string(out)
}

// requireRoot skips a test that needs root when run as another user (a
// developer's plain `go test ./scripts/`), saying why and how to run it;
// under `make test` (KUBLING_TEST_AS_ROOT=1, docs/testing.md) not being root
// fails the test instead, so no check is skipped there.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "needs root: " + why + "; run it as root (sudo go test ./scripts/, or sudo make test)"
	if os.Getenv("KUBLING_TEST_AS_ROOT") == "1" {
		t.Fatal(msg)
	}
	t.Skip("skipped: " + msg)
}

// killMentioning kills every process whose command line contains s.
func killMentioning(s string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(b, []byte(s)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// lines reads "key value" lines of a test script's output.
func lines(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			m[k] = v
		}
	}
	return m
}

// TestUninstallKeepsADataDirOnItsOwnMount uninstalls a kubling whose data
// dir is a tmpfs of its own (a volume), with a bind mount below it (as the
// kubelet makes for pod volumes): the bind mount is unmounted (the folder
// it showed keeps its files), everything in the data dir goes, dotfiles
// too, and the mount point stays, with one line saying so. A data dir that
// is a plain folder goes entirely. When a mount below cannot be unmounted
// (umount fails), nothing of the data dir is deleted and the script fails.
func TestUninstallKeepsADataDirOnItsOwnMount(t *testing.T) {
	tmp := t.TempDir()
	for name, text := range map[string]string{"killall.sh": Killall, "body.sh": UninstallBody} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `
# setup NAME MOUNTED: a data dir "$tmp/NAME/my data" (a tmpfs when MOUNTED
# is yes) with files, dotfiles and a bind mount of "$tmp/NAME/src" below,
# and an installation in "$tmp/NAME/bin".
setup() {
	data="$tmp/$1/my data"
	mkdir -p "$data" "$tmp/$1/src" "$tmp/$1/bin"
	[ "$2" = yes ] && mount -t tmpfs tmpfs "$data"
	mkdir -p "$data/server/db" "$data/agent/kubelet/pods/p/volumes/v"
	echo x >"$data/server/db/state.db"
	echo x >"$data/.hidden"
	echo x >"$data/..odd"
	echo keep >"$tmp/$1/src/keep"
	mount --bind "$tmp/$1/src" "$data/agent/kubelet/pods/p/volumes/v"
	bin="$tmp/$1/bin"
	cp "$tmp/killall.sh" "$bin/kubling-killall.sh"
	echo >"$bin/kubling"
	ln -s kubling "$bin/kubectl"
	{
		printf "#!/bin/sh\nBIN_DIR='%s'\nSERVICE_NAME=kubling\nSERVICE_SYSTEM=none\nDATA_DIR='%s'\n" "$bin" "$data"
		cat "$tmp/body.sh"
	} >"$bin/kubling-uninstall.sh"
	chmod 755 "$bin/kubling-killall.sh" "$bin/kubling-uninstall.sh"
}
# report NAME: what is left.
report() {
	data="$tmp/$1/my data"
	echo "$1-mounted $(awk -v d="$(echo "$data" | sed 's/ /\\\\040/g')" '$2 == d' /proc/self/mounts | wc -l)"
	echo "$1-below $(grep -c "/$1/my\\\\040data/" /proc/self/mounts)"
	echo "$1-exists $([ -d "$data" ] && echo yes || echo no)"
	echo "$1-left $(ls -A "$data" 2>/dev/null | tr '\n' ,)"
	echo "$1-src $(cat "$tmp/$1/src/keep")"
	echo "$1-bin $(ls -A "$tmp/$1/bin" | tr '\n' ,)"
}

setup volume yes
"$tmp/volume/bin/kubling-uninstall.sh" >"$tmp/volume.out" 2>&1
echo "volume-rc $?"
echo "volume-out $(tr '\n' '|' <"$tmp/volume.out")"
report volume

setup plain no
"$tmp/plain/bin/kubling-uninstall.sh" >"$tmp/plain.out" 2>&1
echo "plain-rc $?"
report plain

setup stuck yes
mkdir -p "$tmp/fakebin"
printf '#!/bin/sh\nexit 1\n' >"$tmp/fakebin/umount"
chmod 755 "$tmp/fakebin/umount"
PATH="$tmp/fakebin:$PATH" "$tmp/stuck/bin/kubling-uninstall.sh" >"$tmp/stuck.out" 2>&1
echo "stuck-rc $?"
echo "stuck-out $(tr '\n' '|' <"$tmp/stuck.out")"
report stuck
`
	got := lines(isolated(t, tmp, script))
	data := tmp + "/volume/my data"
	want := map[string]string{
		"volume-rc": "0", "volume-out": "kubling-uninstall.sh: kept " + data + " (a mount point of its own) and removed everything in it|kubling is uninstalled|",
		"volume-mounted": "1", "volume-below": "0", "volume-exists": "yes", "volume-left": "", "volume-src": "keep", "volume-bin": "",
		"plain-rc": "0", "plain-mounted": "0", "plain-below": "0", "plain-exists": "no", "plain-left": "", "plain-src": "keep", "plain-bin": "",
		"stuck-rc": "1", "stuck-mounted": "1", "stuck-below": "1", "stuck-exists": "yes", "stuck-left": "..odd,.hidden,agent,server,", "stuck-src": "keep",
		"stuck-bin": "kubectl,kubling,kubling-killall.sh,kubling-uninstall.sh,",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if out := got["stuck-out"]; !strings.HasPrefix(out, "kubling-uninstall.sh: mounts remain below "+tmp+"/stuck/my data") || strings.Count(out, "|") != 1 {
		t.Errorf("stuck: want one line on the mount left, got %q", out)
	}
}

// TestKillallStopsOnlyItsOwn starts, in a mount namespace of its own that
// stands for the host, processes that look like kubling (this test binary
// through a symlink named kubling), containerd and shims (copies of sleep
// and sh in the payload folders of a data dir), then runs killall for one
// data dir. It must stop that data dir's kublings however the data dir was
// given (--data-dir X, --data-dir=X/, -d relative to the process's working
// directory, KUBLING_DATA_DIR, or only held open as kubling holds its lock),
// its containerd, its shims (even once their payload folder is deleted)
// and every process below them (containers, in whichever namespace), and
// unmount what is below its data dir. It must leave alone the same
// processes of another data dir (also a nested one, and one whose flag
// overrides its KUBLING_DATA_DIR), a kubling with the default data dir,
// other commands, and any of this data dir's processes running in another
// mount namespace (a container) or PID namespace, with their children.
// Given / as its data dir, it stops nothing and says why in one line.
func TestKillallStopsOnlyItsOwn(t *testing.T) {
	tmp := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kubling", "notkubling"} {
		if err := os.Symlink(self, filepath.Join(tmp, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "killall.sh"), []byte(Killall), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
KUBLING_DATA_DIR=/ sh "$tmp/killall.sh" >"$tmp/refuse.out" 2>&1
echo "refuse-rc $?"
echo "refuse-out $(tr '\n' '|' <"$tmp/refuse.out")"

kub=$tmp/bin/kubling
data="$tmp/it's data"
other="$tmp/other"
sleep=$(command -v sleep)
dash=$(readlink -f "$(command -v sh)")
cp "$sleep" "$tmp/bin/pause"
for d in "$data" "$other"; do
	mkdir -p "$d/data/v1/bin" "$d/data/v0/bin"
	cp "$sleep" "$d/data/v1/bin/containerd"
	cp "$dash" "$d/data/v1/bin/containerd-shim-runc-v2"
	cp "$dash" "$d/data/v0/bin/containerd-shim-runc-v2"
done
export KUBLING_SCRIPTS_TEST_DUMMY=1
# start NAME COMMAND…: starts COMMAND in the background, as NAME.
start() {
	name=$1
	shift
	"$@" </dev/null >/dev/null 2>&1 &
	echo "$name $!" >>"$tmp/pids"
}
# pods leave their children's pids in "$tmp/NAME".
pod='"$0" 1000 & echo $! >"$1"; unshare --mount "$0" 1000 & echo $! >"$2"; wait'

start own-flag "$kub" server --data-dir "$data"
start own-eq "$kub" agent "--data-dir=$tmp//it's data/."
start own-env env KUBLING_DATA_DIR="$data" "$kub" agent
start own-rel sh -c 'cd "$1" && exec "$2" server -d "it'"'"'s data"' sh "$tmp" "$kub"
start own-lock env KUBLING_SCRIPTS_TEST_HOLD="$data" "$kub" server
start own-containerd "$data/data/v1/bin/containerd" 1000
start own-shim "$data/data/v1/bin/containerd-shim-runc-v2" -c "$pod" "$tmp/bin/pause" "$tmp/own-c1" "$tmp/own-c2"
start own-shim-deleted "$data/data/v0/bin/containerd-shim-runc-v2" -c "$pod" "$tmp/bin/pause" "$tmp/del-c1" "$tmp/del-c2"

start other-flag "$kub" server --data-dir "$other"
start other-nested "$kub" server --data-dir "$data/sub"
start other-flag-wins env KUBLING_DATA_DIR="$data" "$kub" server --data-dir "$other"
start other-default "$kub" agent
start other-command "$kub" token --data-dir "$data"
start other-name "$tmp/bin/notkubling" server --data-dir "$data"
start other-containerd "$other/data/v1/bin/containerd" 1000
start other-shim "$other/data/v1/bin/containerd-shim-runc-v2" -c "$pod" "$tmp/bin/pause" "$tmp/oth-c1" "$tmp/oth-c2"

start container-kubling unshare --mount "$kub" server --data-dir "$data"
start container-pidns unshare --pid --fork --mount-proc "$kub" server --data-dir "$data"
start container-containerd unshare --mount "$data/data/v1/bin/containerd" 1000
start container-shim unshare --mount "$data/data/v1/bin/containerd-shim-runc-v2" -c "$pod" "$tmp/bin/pause" "$tmp/ctr-c1" "$tmp/ctr-c2"

mkdir -p "$data/agent/kubelet/pods/p/v" "$other/agent/kubelet/pods/p/v"
mount -t tmpfs tmpfs "$data/agent/kubelet/pods/p/v"
mount -t tmpfs tmpfs "$other/agent/kubelet/pods/p/v"
sleep 1
rm -rf "$data/data/v0"
for c in own del oth ctr; do
	for n in 1 2; do echo "$c-c$n $(cat "$tmp/$c-c$n")" >>"$tmp/pids"; done
done

KUBLING_DATA_DIR="$data" sh "$tmp/killall.sh" >"$tmp/killall.out" 2>&1
echo "killall-rc $?"
echo "killall-out $(tr '\n' '|' <"$tmp/killall.out")"
sleep 0.5
while read -r name pid; do
	state=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	case $state in "" | Z) echo "$name dead" ;; *) echo "$name alive" ;; esac
done <"$tmp/pids"
echo "mount-own $(grep -c "/it's\\\\040data/agent/" /proc/self/mounts)"
echo "mount-other $(grep -c "/other/agent/" /proc/self/mounts)"
`
	out := isolated(t, tmp, script)
	got := lines(out)
	// Other data dirs' kublings run on this host: the shared pod network is
	// left to them, and killall says so (one line).
	if o := got["killall-out"]; !strings.HasPrefix(o, "kubling-killall.sh: another kubling runs on this host (pid ") || !strings.HasSuffix(o, "leaving the host's pod network (cni0, flannel, pod netns, iptables rules) to it|") {
		t.Errorf("killall-out: %q, want the one line about another kubling", o)
	}
	want := map[string]string{"killall-rc": "0", "mount-own": "0", "mount-other": "1", "refuse-rc": "1",
		"refuse-out": "kubling-killall.sh: refusing the data dir /: / is a system folder (give kubling a folder of its own, such as /var/lib/kubling); nothing stopped|"}
	for _, name := range []string{"own-flag", "own-eq", "own-env", "own-rel", "own-lock", "own-containerd", "own-shim", "own-shim-deleted",
		"own-c1", "own-c2", "del-c1", "del-c2"} {
		want[name] = "dead"
	}
	for _, name := range []string{"other-flag", "other-nested", "other-flag-wins", "other-default", "other-command", "other-name", "other-containerd",
		"other-shim", "oth-c1", "oth-c2", "container-kubling", "container-pidns", "container-containerd", "container-shim", "ctr-c1", "ctr-c2"} {
		want[name] = "alive"
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if t.Failed() {
		t.Logf("test script said:\n%s", out)
	}
}

// TestInstalledKillallKnowsItsInstallation: the killall install.sh writes
// stops its installation's data dir and service by default (under systemd
// a stopped process would be started again while killall cleans up), and
// neither for another data dir named by KUBLING_DATA_DIR.
func TestInstalledKillallKnowsItsInstallation(t *testing.T) {
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "body.sh"), []byte(Killall), 0o644); err != nil {
		t.Fatal(err)
	}
	script := shFuncs(t, readScript(t, "install.sh"), "quote", "killall_header") + `
mkdir -p "$tmp/bin"
printf '#!/bin/sh\necho "$*" >>"%s/calls"\n' "$tmp" >"$tmp/bin/systemctl"
chmod 755 "$tmp/bin/systemctl"
write() { DATA_DIR=$1 NAME=kubling-it SYSTEM=systemd; { killall_header; sed 1d "$tmp/body.sh"; } >"$tmp/k.sh"; }
write "$tmp/it's data"
PATH="$tmp/bin:$PATH" sh "$tmp/k.sh" >/dev/null 2>&1
echo "own-rc $?"
echo "own-calls $(tr '\n' '|' <"$tmp/calls" 2>/dev/null)"
: >"$tmp/calls"
KUBLING_DATA_DIR="$tmp/other" PATH="$tmp/bin:$PATH" sh "$tmp/k.sh" >/dev/null 2>&1
echo "other-calls $(tr '\n' '|' <"$tmp/calls")"
write /
PATH="$tmp/bin:$PATH" sh "$tmp/k.sh" >"$tmp/out" 2>&1
echo "root-rc $?"
echo "root-out $(tr '\n' '|' <"$tmp/out")"
`
	got := lines(isolated(t, tmp, script))
	want := map[string]string{
		"own-rc": "0", "own-calls": "stop kubling-it|", "other-calls": "", "root-rc": "1",
		"root-out": "kubling-killall.sh: refusing the data dir /: / is a system folder (give kubling a folder of its own, such as /var/lib/kubling); nothing stopped|",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

// TestInstallPicksVerifiesAndRefuses runs install.sh's download step
// (install_binary) against a local release folder, with uname -m faked:
// each machine gets its architecture's artifact, checked against
// sha256sum.txt and decompressed: xz where the release has it and the host
// can unpack it, else gzip. A wrong sum, a missing artifact, a host that
// can unpack neither and an unknown machine are refused with one line and
// leave no binary. An agent gets the agent build where the release lists
// one, else kubling.
func TestInstallPicksVerifiesAndRefuses(t *testing.T) {
	xz, err := exec.LookPath("xz")
	if err != nil {
		t.Fatal("xz is missing: install xz-utils (scripts/deps.sh test does)")
	}
	release := t.TempDir()
	artifact := func(name, version, arch, ext string) string {
		// A "binary" that runs here and says which artifact it came from.
		return "#!/bin/sh\necho " + name + " " + version + " " + arch + " " + ext + "\n"
	}
	var good, bad, old strings.Builder
	for _, arch := range []string{"amd64", "arm64", "arm"} {
		// v0.9.0 is a release from before the agent build and xz.
		for version, sums := range map[string]*strings.Builder{"v1.0.0": &good, "v1.0.1": &bad, "v0.9.0": &old} {
			dir := filepath.Join(release, "download", version)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			names := []string{"kubling"}
			if version != "v0.9.0" {
				names = append(names, "kubling-agent")
			}
			for _, name := range names {
				var gz bytes.Buffer
				zw := gzip.NewWriter(&gz)
				zw.Write([]byte(artifact(name, version, arch, "gz")))
				zw.Close()
				compressed := map[string][]byte{"gz": gz.Bytes()}
				if version != "v0.9.0" {
					cmd := exec.Command(xz, "-c")
					cmd.Stdin = strings.NewReader(artifact(name, version, arch, "xz"))
					out, err := cmd.Output()
					if err != nil {
						t.Fatal(err)
					}
					compressed["xz"] = out
				}
				for ext, data := range compressed {
					file := name + "-" + arch + "." + ext
					if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
						t.Fatal(err)
					}
					sum := sha256.Sum256(data)
					if version == "v1.0.1" {
						sum[0] ^= 1
					}
					fmt.Fprintf(sums, "%x  %s\n", sum, file)
				}
			}
		}
	}
	for version, sums := range map[string]string{"v1.0.0": good.String(), "v1.0.1": bad.String(), "v0.9.0": old.String()} {
		if err := os.WriteFile(filepath.Join(release, "download", version, "sha256sum.txt"), []byte(sums), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// v1.0.2 has no armv7 artifact.
	if err := os.MkdirAll(filepath.Join(release, "download", "v1.0.2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(release, "download", "v1.0.2", "sha256sum.txt"), []byte(good.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fns := shFuncs(t, readScript(t, "install.sh"), "info", "fatal", "have", "listed", "download", "arch", "install_binary")
	for shell, env := range shells(t) {
		for _, c := range []struct {
			mode, machine, version, lacks, want, err string
		}{
			{"server", "x86_64", "v1.0.0", "", "kubling v1.0.0 amd64 xz", ""},
			{"server", "aarch64", "v1.0.0", "", "kubling v1.0.0 arm64 xz", ""},
			{"server", "armv7l", "v1.0.0", "", "kubling v1.0.0 arm xz", ""},
			{"server", "armv8l", "v1.0.0", "", "kubling v1.0.0 arm xz", ""},
			{"server", "armv7l", "v1.0.0", "xz", "kubling v1.0.0 arm gz", ""},
			{"agent", "x86_64", "v1.0.0", "", "kubling-agent v1.0.0 amd64 xz", ""},
			{"agent", "armv7l", "v1.0.0", "xz", "kubling-agent v1.0.0 arm gz", ""},
			{"agent", "aarch64", "v0.9.0", "", "kubling v0.9.0 arm64 gz", ""},
			{"server", "aarch64", "v1.0.1", "", "", "checksum mismatch for kubling-arm64.xz"},
			{"agent", "aarch64", "v1.0.1", "xz", "", "checksum mismatch for kubling-agent-arm64.gz"},
			{"server", "armv7l", "v1.0.2", "", "", "download of kubling-arm.xz (v1.0.2) failed"},
			{"server", "x86_64", "v1.0.0", "xz gzip", "", "cannot unpack kubling v1.0.0: install one of: xz gzip"},
			{"server", "x86_64", "v0.9.0", "gzip", "", "cannot unpack kubling v0.9.0: install one of: gzip"},
			{"server", "riscv64", "v1.0.0", "", "", "unsupported architecture riscv64"},
		} {
			// Fake curl (downloads from the folder) and uname (the machine:
			// a function, since BusyBox's sh prefers its own applets to PATH).
			fake := t.TempDir()
			curl := "#!/bin/sh\nwhile [ $# -gt 2 ]; do shift; done\n# curl -fsSL -o OUT URL\ncp \"" + release + "/${2#http://release.test/}\" \"$1\" 2>/dev/null\n"
			if err := os.WriteFile(filepath.Join(fake, "curl"), []byte(curl), 0o755); err != nil {
				t.Fatal(err)
			}
			uname := "uname() { [ \"$1\" = -m ] && echo " + c.machine + "; }\n"
			// A host without some decompressors: what install.sh asks of it.
			lacks := "have() { case \" " + c.lacks + " \" in *\" $1 \"*) return 1 ;; esac; command -v \"$1\" >/dev/null 2>&1; }\n"
			binDir := t.TempDir()
			path := fake + ":" + strings.TrimPrefix(env[0], "PATH=")
			vars := []string{"PATH=" + path, "BIN_DIR=" + binDir, "RELEASE_URL=http://release.test", "INSTALL_KUBLING_VERSION=" + c.version, "MODE=" + c.mode}
			_, stderr, err := sh(t, vars, t.TempDir(), "set -eu\n"+uname+fns+lacks+"install_binary")
			got, _ := exec.Command(filepath.Join(binDir, "kubling"), "--version").Output()
			if c.err == "" {
				if err != nil || strings.TrimSpace(string(got)) != c.want {
					t.Errorf("%s: %s %s %s (without %q): installed %q (%v %s), want %q", shell, c.mode, c.machine, c.version, c.lacks, got, err, stderr, c.want)
				}
				continue
			}
			if err == nil || !strings.Contains(stderr, c.err) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("%s: %s %s: want one error line with %q, got %v %q", shell, c.machine, c.version, c.err, err, stderr)
			}
			if entries, _ := os.ReadDir(binDir); len(entries) != 0 {
				t.Errorf("%s: %s %s: refused, but left %v in the bin dir", shell, c.machine, c.version, entries)
			}
		}
	}
}
