package iptables

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubling/kubling/pkg/agent/payload"
)

// bundled unpacks the embedded payload and returns its iptables.
func bundled(t *testing.T) Bundled {
	t.Helper()
	p, err := payload.Embedded()
	if err != nil {
		t.Fatalf("%v (run the tests through `make test`, which builds the payload first)", err)
	}
	dir, _, err := p.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return Bundled{Dir: filepath.Join(dir, "iptables")}
}

// requireRoot skips a test that reads the kernel's tables (CAP_NET_ADMIN)
// when run as another user (a developer's plain `go test`), saying why;
// under `make test` (KUBLING_TEST_AS_ROOT=1, docs/testing.md) not being
// root fails the test instead, so CI never skips it.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("KUBLING_TEST_AS_ROOT") == "1" {
		t.Fatal("needs root: the bundled iptables reads the kernel's tables (CAP_NET_ADMIN); run make test as root")
	}
	t.Skip("skipped: needs root (reads the kernel's tables); run it as root or through sudo make test")
}

// TestBundledRunsWithoutHostLibraries: both multi-call programs start
// through the bundled loader and answer as the command they are called as.
func TestBundledRunsWithoutHostLibraries(t *testing.T) {
	b := bundled(t)
	for mode, want := range map[Mode]string{NFT: "(nf_tables)", Legacy: "(legacy)"} {
		for _, name := range []string{"iptables", "ip6tables-restore"} {
			cmd, err := b.Command(mode, name, "--version")
			if err != nil {
				t.Fatal(err)
			}
			// Nothing from the host's library folders may be needed.
			cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH=/nonexistent")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s --version: %v: %s", mode, name, err, out)
			}
			if !strings.Contains(string(out), want) || !strings.HasPrefix(string(out), name+" v1.") {
				t.Errorf("%s %s --version = %q, want %s", mode, name, out, want)
			}
		}
	}
}

// TestScriptIsOneCommand: the wrapper execs the loader with every path as
// one shell word, whatever the data dir's name holds.
func TestScriptIsOneCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's a dir", "iptables")
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in loader that prints the arguments it got, one a line.
	ld := filepath.Join(dir, "lib", "ld-linux-test.so.1")
	if err := os.WriteFile(ld, []byte("#!/bin/sh\necho \"XTABLES_LIBDIR=$XTABLES_LIBDIR\"\nfor a; do echo \"$a\"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := Bundled{Dir: dir}.Script("iptables-restore", Legacy)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "iptables-restore")
	if err := os.WriteFile(path, script, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "--noflush", "a b").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"XTABLES_LIBDIR=" + filepath.Join(dir, "xtables"), "--library-path", filepath.Join(dir, "lib"),
		"--argv0", "iptables-restore", filepath.Join(dir, "sbin", "xtables-legacy-multi"), "--noflush", "a b"}, "\n") + "\n"
	if string(out) != want {
		t.Errorf("script ran\n%s\nwant\n%s", out, want)
	}
}

// TestSetupUsesTheHostsIptables: a host iptables and ipset on PATH win,
// and no bundled command is left in the bin folder.
func TestSetupUsesTheHostsIptables(t *testing.T) {
	host, bin := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "iptables"), []byte("#!/bin/sh\necho 'iptables v1.8.7 (legacy)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{Ipset, Nft, "iptables-save"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("stale"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range Tools {
		if err := os.WriteFile(filepath.Join(host, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":"+host)
	c, err := Setup(Bundled{Dir: "/nonexistent"}, bin, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bundled || c.Mode != Legacy || c.Path != filepath.Join(host, "iptables") || c.Version != "iptables v1.8.7 (legacy)" {
		t.Errorf("Setup = %+v, want the host's legacy iptables", c)
	}
	if os.Getenv("PATH") != host {
		t.Errorf("PATH = %q, want %q (the bin folder dropped)", os.Getenv("PATH"), host)
	}
	for _, name := range []string{Ipset, Nft, "iptables-save"} {
		if _, err := os.Stat(filepath.Join(bin, name)); !os.IsNotExist(err) {
			t.Errorf("bundled %s was left in the bin folder: %v", name, err)
		}
	}
	for _, tool := range Tools {
		if got := c.Tools[tool]; got.Bundled || got.Path != filepath.Join(host, tool) {
			t.Errorf("Setup chose %s %+v, want the host's", tool, got)
		}
	}
}

// TestSetupBundledIpsetBesideHostIptables: a host with iptables and nft but
// no ipset (Debian's iptables package alone) gets the payload's ipset,
// after the host's folders, and keeps its own iptables and nft.
func TestSetupBundledIpsetBesideHostIptables(t *testing.T) {
	host, bin, dir := t.TempDir(), filepath.Join(t.TempDir(), "bin"), t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "iptables"), []byte("#!/bin/sh\necho 'iptables v1.8.9 (nf_tables)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in bundle: its loader prints what it would run.
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lib", "ld-linux-test.so.1"), []byte("#!/bin/sh\necho \"$3 $4\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, Nft), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", host)
	c, err := Setup(Bundled{Dir: dir}, bin, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bundled || c.Mode != NFT || c.Tools[Ipset] != (Tool{Path: filepath.Join(bin, Ipset), Bundled: true}) ||
		c.Tools[Nft] != (Tool{Path: filepath.Join(host, Nft)}) {
		t.Errorf("Setup = %+v, want the host's iptables and nft, the bundled ipset", c)
	}
	if want := host + ":" + bin; os.Getenv("PATH") != want {
		t.Errorf("PATH = %q, want %q", os.Getenv("PATH"), want)
	}
	out, err := exec.Command(Ipset, "list").CombinedOutput()
	if want := filepath.Join(dir, "sbin", Ipset) + " list\n"; err != nil || string(out) != want {
		t.Errorf("ipset list ran %q (%v), want %q", out, err, want)
	}
	for _, name := range []string{"iptables", Nft} {
		if _, err := os.Stat(filepath.Join(bin, name)); !os.IsNotExist(err) {
			t.Errorf("a bundled %s was written beside the host's: %v", name, err)
		}
	}
}

// TestSetupBundled: with no iptables on the host's PATH the bundled one is
// written, put after the host's folders, and runs; --prefer-bundled-bin
// puts it first even where the host has one.
func TestSetupBundled(t *testing.T) {
	requireRoot(t)
	b := bundled(t)
	host, bin := t.TempDir(), filepath.Join(t.TempDir(), "bin")
	t.Setenv("PATH", host)
	c, err := Setup(b, bin, false)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Bundled || c.Path != filepath.Join(bin, "iptables") || !strings.Contains(c.Version, "v1.") {
		t.Errorf("Setup = %+v, want the bundled iptables", c)
	}
	if want := host + ":" + bin; os.Getenv("PATH") != want {
		t.Errorf("PATH = %q, want %q", os.Getenv("PATH"), want)
	}
	for _, name := range Commands {
		if _, err := exec.LookPath(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	out, err := exec.Command("iptables-save", "-t", "filter").CombinedOutput()
	if err != nil {
		t.Fatalf("bundled iptables-save: %v: %s", err, out)
	}
	// The bundled ipset and nft talk to the kernel (what NetworkPolicy and
	// kube-proxy's nftables mode need).
	for _, tool := range Tools {
		if got := c.Tools[tool]; !got.Bundled || got.Path != filepath.Join(bin, tool) {
			t.Errorf("Setup chose %s %+v, want the bundled one", tool, got)
		}
	}
	if out, err := exec.Command(Ipset, "save").CombinedOutput(); err != nil {
		t.Fatalf("bundled ipset save: %v: %s", err, out)
	}
	if out, err := exec.Command(Nft, "list", "tables").CombinedOutput(); err != nil {
		t.Fatalf("bundled nft list tables: %v: %s", err, out)
	}

	if err := os.WriteFile(filepath.Join(host, "iptables"), []byte("#!/bin/sh\necho host\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err = Setup(b, bin, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Bundled || c.Path != filepath.Join(bin, "iptables") {
		t.Errorf("Setup with preferBundled = %+v, want the bundled iptables", c)
	}
	if want := bin + ":" + host; os.Getenv("PATH") != want {
		t.Errorf("PATH = %q, want %q", os.Getenv("PATH"), want)
	}
}
