// Package iptables puts an iptables, an ipset and an nft on the PATH of the
// node's components: kube-proxy, the kubelet, flannel and the portmap CNI
// plugin all run `iptables`, `iptables-save`, `iptables-restore` and their
// ip6tables twins by name; the NetworkPolicy controller (pkg/cni/netpol)
// runs those and `ipset`; kube-proxy's nftables mode runs `nft`. The
// host's is used when it has one (as K3s does); else, or with
// --prefer-bundled-bin, the one in kubling's payload: Debian's
// iptables with its own libraries and loader (payload/cmd/elfbundle), so a
// host with no iptables package runs a node all the same.
//
// The bundled commands are small shell scripts written into the node's bin
// folder at each start, naming this payload's files and the mode chosen
// for this host: nf_tables unless the legacy tables hold more rules (a
// host whose other software uses iptables-legacy keeps one set of tables).
package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/fileutil"
)

// Commands are the names the node's components run.
var Commands = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

// Tools are the other programs of the bundle (Dir/sbin/<name>, with the
// same libraries): each, like iptables, the host's when it has one, else
// the payload's, chosen on its own.
var Tools = []string{Ipset, Nft}

const (
	Ipset = "ipset"
	Nft   = "nft"
)

// Mode is the kernel interface an iptables drives.
type Mode string

const (
	NFT    Mode = "nft"    // nf_tables (xtables-nft-multi)
	Legacy Mode = "legacy" // ip_tables (xtables-legacy-multi)
)

// Bundled is the payload's iptables: Dir/sbin/xtables-{nft,legacy}-multi,
// Dir/lib (the loader and libraries), Dir/xtables (the extensions).
type Bundled struct{ Dir string }

// loader is the bundled dynamic loader (ld-linux-*.so.*, one per payload).
func (b Bundled) loader() (string, error) {
	m, err := filepath.Glob(filepath.Join(b.Dir, "lib", "ld-*.so*"))
	if err != nil {
		return "", err
	}
	if len(m) != 1 {
		return "", fmt.Errorf("the payload's iptables in %s has %d loaders, want one", b.Dir, len(m))
	}
	return m[0], nil
}

// argv runs command (one of Commands) in mode: the loader, told the
// library folder and the name the multi-call program dispatches on.
func (b Bundled) argv(command string, mode Mode) ([]string, error) {
	ld, err := b.loader()
	if err != nil {
		return nil, err
	}
	return []string{ld, "--library-path", filepath.Join(b.Dir, "lib"), "--argv0", command,
		filepath.Join(b.Dir, "sbin", "xtables-"+string(mode)+"-multi")}, nil
}

// toolArgv runs the bundled tool (one of Tools) with its libraries.
func (b Bundled) toolArgv(tool string) ([]string, error) {
	ld, err := b.loader()
	if err != nil {
		return nil, err
	}
	return []string{ld, "--library-path", filepath.Join(b.Dir, "lib"), filepath.Join(b.Dir, "sbin", tool)}, nil
}

// env is what the bundled iptables needs from its environment: where its
// extensions are.
func (b Bundled) env() string { return "XTABLES_LIBDIR=" + filepath.Join(b.Dir, "xtables") }

// Command returns command (one of Commands) in mode with args, ready to run.
func (b Bundled) Command(mode Mode, command string, args ...string) (*exec.Cmd, error) {
	argv, err := b.argv(command, mode)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], append(argv[1:], args...)...)
	cmd.Env = append(config.ChildEnv(), b.env())
	return cmd, nil
}

// Script is the shell script that stands for command in mode on PATH
// (one of Tools: mode is not used).
func (b Bundled) Script(command string, mode Mode) ([]byte, error) {
	argv, err := b.argv(command, mode)
	what := fmt.Sprintf("iptables (%s mode)", mode)
	if slices.Contains(Tools, command) {
		argv, err = b.toolArgv(command)
		what = command
	}
	if err != nil {
		return nil, err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "#!/bin/sh\n# Written by kubling at start: the payload's %s, run with its\n# own libraries and loader. Rewritten at every start.\n", what)
	s.WriteString("export " + quote(b.env()) + "\nexec")
	for _, a := range argv {
		s.WriteString(" " + quote(a))
	}
	s.WriteString(` "$@"` + "\n")
	return []byte(s.String()), nil
}

// quote makes s one shell word.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// DetectMode picks the mode for this host: the one whose tables hold more
// rules, nf_tables on a tie; the one that works when only one does.
func (b Bundled) DetectMode() (Mode, error) {
	nft, nftErr := b.countRules(NFT)
	legacy, legacyErr := b.countRules(Legacy)
	switch {
	case nftErr != nil && legacyErr != nil:
		return "", fmt.Errorf("the bundled iptables can read neither the kernel's nf_tables (%v) nor its legacy tables (%v)", nftErr, legacyErr)
	case nftErr != nil:
		return Legacy, nil
	case legacyErr == nil && legacy > nft:
		return Legacy, nil
	default:
		return NFT, nil
	}
}

// countRules counts the rules (-A lines) iptables-save and ip6tables-save
// print in mode.
func (b Bundled) countRules(mode Mode) (int, error) {
	n := 0
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		cmd, err := b.Command(mode, save)
		if err != nil {
			return 0, err
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			if save == "ip6tables-save" {
				continue // a kernel without IPv6 tables: IPv4 decides
			}
			return 0, fmt.Errorf("%s: %w: %s", save, err, strings.TrimSpace(stderr.String()))
		}
		for _, line := range bytes.Split(out, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("-A ")) {
				n++
			}
		}
	}
	return n, nil
}

// Choice is the iptables the node's components run.
type Choice struct {
	// Path is where `iptables` resolves on the new PATH.
	Path string
	// Bundled says the payload's iptables was chosen, in Mode.
	Bundled bool
	Mode    Mode
	// Version is what `iptables --version` printed.
	Version string
	// Tools are where each of Tools resolves on the new PATH. Checked when
	// used (pkg/cni/netpol, kube-proxy's nftables mode): a node may run
	// neither.
	Tools map[string]Tool
}

// Tool is one of Tools as chosen: its path, and whether it is the payload's.
type Tool struct {
	Path    string
	Bundled bool
}

// Setup chooses the node's iptables, ipset and nft and sets the process's PATH
// (which its components, in-process and children alike, search): the
// host's when PATH has one and preferBundled is false; else the bundled
// commands, written into binDir, which goes after the host's folders
// (before them with preferBundled). Each is chosen on its own: a host with
// iptables but no ipset or nft gets the bundled ones. The chosen iptables must
// run (`--version`).
func Setup(b Bundled, binDir string, preferBundled bool) (Choice, error) {
	hostPath := withoutDir(os.Getenv("PATH"), binDir)
	_, hostErr := lookPath("iptables", hostPath)
	c := Choice{Tools: map[string]Tool{}}
	c.Bundled = hostErr != nil || preferBundled
	scripts := map[string][]byte{}
	if c.Bundled {
		mode, err := b.DetectMode()
		if err != nil {
			return c, err
		}
		c.Mode = mode
		for _, name := range Commands {
			if scripts[name], err = b.Script(name, mode); err != nil {
				return c, err
			}
		}
	}
	for _, tool := range Tools {
		if _, err := lookPath(tool, hostPath); err == nil && !preferBundled {
			continue
		}
		var err error
		if scripts[tool], err = b.Script(tool, ""); err != nil {
			return c, err
		}
	}
	// Only the chosen bundled commands are in binDir: none stale for
	// kubling-killall.sh to find, none shadowing the host's.
	if len(scripts) > 0 {
		if err := os.MkdirAll(binDir, 0o755); err != nil {
			return c, err
		}
	}
	for _, name := range append(slices.Clone(Commands), Tools...) {
		path := filepath.Join(binDir, name)
		if script, ok := scripts[name]; ok {
			if err := fileutil.WriteAtomic(path, script, 0o755); err != nil {
				return c, err
			}
		} else if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return c, err
		}
	}
	path := hostPath
	switch {
	case len(scripts) == 0:
	case preferBundled || hostPath == "":
		path = strings.TrimSuffix(binDir+string(filepath.ListSeparator)+hostPath, string(filepath.ListSeparator))
	default:
		path = hostPath + string(filepath.ListSeparator) + binDir
	}
	if err := os.Setenv("PATH", path); err != nil {
		return c, err
	}
	var err error
	if c.Path, err = exec.LookPath("iptables"); err != nil {
		return c, err
	}
	for _, tool := range Tools {
		path, err := exec.LookPath(tool)
		if err != nil {
			return c, err
		}
		_, bundled := scripts[tool]
		c.Tools[tool] = Tool{Path: path, Bundled: bundled}
	}
	out, err := exec.Command(c.Path, "--version").CombinedOutput()
	if err != nil {
		return c, fmt.Errorf("%s --version: %w: %s", c.Path, err, strings.TrimSpace(string(out)))
	}
	if !c.Bundled {
		// The host's iptables (nf_tables or legacy) reports its own mode.
		c.Mode = Legacy
		if bytes.Contains(out, []byte("nf_tables")) {
			c.Mode = NFT
		}
	}
	c.Version = strings.TrimSpace(string(out))
	return c, nil
}

// withoutDir is the PATH value path without dir (left by an earlier Setup
// in this process).
func withoutDir(path, dir string) string {
	var keep []string
	for _, d := range filepath.SplitList(path) {
		if d != "" && filepath.Clean(d) != filepath.Clean(dir) {
			keep = append(keep, d)
		}
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

// lookPath finds an executable named name in the folders of path.
func lookPath(name, path string) (string, error) {
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
