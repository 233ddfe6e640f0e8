// Package checkconfig is `kubling check-config`: one line per thing a node
// needs from its host — OK, WARN (kubling copes, or a feature will be
// missing) or FAIL (kubling will refuse to start) — read from a root folder
// so tests can use fake trees.
package checkconfig

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubling/kubling/pkg/agent/host"
	"github.com/kubling/kubling/pkg/agent/nvidia"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/hostcheck"
)

// Level of a result.
type Level string

const (
	OK   Level = "OK"
	Warn Level = "WARN"
	Fail Level = "FAIL"
)

// Result is one line.
type Result struct {
	Level Level
	What  string
	Note  string
}

// Options say what to check against.
type Options struct {
	Root        string // "/" on a real host
	ClusterCIDR string
	ServiceCIDR string
	// Ports to find free (none when kubling is meant to be running).
	Ports []hostcheck.Port
	// LookPath finds host programs (exec.LookPath).
	LookPath func(string) (string, error)
}

// Run performs every check.
func Run(o Options) []Result {
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	at := func(p string) string { return filepath.Join(o.Root, p) }
	var out []Result
	add := func(l Level, what, note string) { out = append(out, Result{l, what, note}) }

	// Kernel.
	facts, factsErr := host.Root(o.Root).Detect()
	if facts.Overlay {
		add(OK, "kernel: overlayfs", "")
	} else {
		add(Warn, "kernel: overlayfs", "missing: containerd falls back to the slower native snapshotter")
	}
	if _, err := os.Stat(at("/proc/sys/net/bridge/bridge-nf-call-iptables")); err == nil {
		add(OK, "kernel: br_netfilter", "")
	} else {
		add(Fail, "kernel: br_netfilter", "missing: load it with `modprobe br_netfilter`")
	}
	if _, err := os.Stat(at("/proc/sys/net/ipv4/ip_forward")); err == nil {
		add(OK, "kernel: IPv4 forwarding", "kubling sets net.ipv4.ip_forward=1 at start")
	} else {
		add(Fail, "kernel: IPv4 forwarding", "no /proc/sys/net/ipv4/ip_forward")
	}
	if _, err := os.Stat(at("/proc/sys/net/netfilter/nf_conntrack_max")); err == nil {
		add(OK, "kernel: conntrack", "")
	} else {
		add(Warn, "kernel: conntrack", "no /proc/sys/net/netfilter: Services need nf_conntrack (`modprobe nf_conntrack`)")
	}
	nfs := host.Root(o.Root).DetectNFS()
	if p := nfs.Problem(); p != "" {
		add(Warn, "kernel: NFS client", p)
	} else {
		add(OK, "kernel: NFS client", "")
	}

	// cgroups and capabilities.
	if err := factsErr; err != nil {
		add(Fail, "cgroups", err.Error())
	} else {
		version := "v1 (kubelet runs with failCgroupV1=false)"
		if facts.CgroupV2 {
			version = "v2"
		}
		add(OK, "cgroups: "+version, "driver "+facts.CgroupDriver)
		for _, ctrl := range missingControllers(o.Root, facts.CgroupV2) {
			add(Fail, "cgroups: "+ctrl+" controller", "not enabled")
		}
		if facts.CapSysResource {
			add(OK, "capability CAP_SYS_RESOURCE", "")
		} else {
			add(Warn, "capability CAP_SYS_RESOURCE", "missing: kubling sets containerd's restrict_oom_score_adj")
		}
	}

	// Swap.
	if swaps, err := os.ReadFile(at("/proc/swaps")); err == nil && len(bytes.Split(bytes.TrimSpace(swaps), []byte("\n"))) > 1 {
		add(Warn, "swap", "on: the kubelet runs with failSwapOn=false and gives pods no swap")
	} else {
		add(OK, "swap", "off")
	}

	// Host programs.
	if p, err := o.LookPath("iptables"); err == nil {
		add(OK, "program: iptables", p)
	} else if p, err := o.LookPath("nft"); err == nil {
		add(Warn, "program: iptables", "missing (nft found at "+p+"): kube-proxy and flannel call iptables; install the iptables package")
	} else {
		add(Fail, "program: iptables", "missing: install the iptables package")
	}
	for _, prog := range []string{"mount", "umount"} {
		if p, err := o.LookPath(prog); err == nil {
			add(OK, "program: "+prog, p)
		} else {
			add(Fail, "program: "+prog, "missing: install util-linux (or mount)")
		}
	}

	// Ports.
	for _, p := range o.Ports {
		if err := hostcheck.PortsFree([]hostcheck.Port{p}); err != nil {
			add(Warn, fmt.Sprintf("port %d (%s)", p.Port, p.What), "in use: is kubling already running?")
		} else {
			add(OK, fmt.Sprintf("port %d (%s)", p.Port, p.What), "free")
		}
	}

	// CIDRs against the host's routes.
	if f, err := os.Open(at("/proc/net/route")); err == nil {
		routes, err := config.ParseProcNetRoute(f)
		f.Close()
		for _, n := range []struct{ flag, cidr string }{{"--cluster-cidr", o.ClusterCIDR}, {"--service-cidr", o.ServiceCIDR}} {
			p, perr := config.ParseCIDR(n.flag, n.cidr)
			switch {
			case err != nil:
				add(Fail, "routes", err.Error())
			case perr != nil:
				add(Fail, n.flag, perr.Error())
			default:
				if err := config.CheckRouteOverlap(n.flag, p, routes); err != nil {
					add(Fail, n.flag+" "+n.cidr, err.Error())
				} else {
					add(OK, n.flag+" "+n.cidr, "no host route overlaps")
				}
			}
		}
	}

	// GPUs (information only).
	if gpu := nvidia.Detect(o.Root, os.Getenv("PATH")); gpu.Driver != "" {
		level := OK
		if !gpu.Usable() {
			level = Warn
		}
		add(level, "NVIDIA", gpu.Summary())
	}
	return out
}

// missingControllers lists the cgroup controllers a node needs but lacks.
func missingControllers(root string, v2 bool) []string {
	need := []string{"cpu", "memory", "pids"}
	have := map[string]bool{}
	if v2 {
		data, _ := os.ReadFile(filepath.Join(root, "/sys/fs/cgroup/cgroup.controllers"))
		for _, c := range strings.Fields(string(data)) {
			have[c] = true
		}
	} else {
		data, _ := os.ReadFile(filepath.Join(root, "/proc/cgroups"))
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[3] == "1" {
				have[f[0]] = true
			}
		}
	}
	var missing []string
	for _, c := range need {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	return missing
}

// Print writes the results, one line each, and says whether any failed.
func Print(w io.Writer, results []Result) (failed bool) {
	for _, r := range results {
		line := fmt.Sprintf("%-4s  %s", r.Level, r.What)
		if r.Note != "" {
			line += ": " + r.Note
		}
		fmt.Fprintln(w, line)
		failed = failed || r.Level == Fail
	}
	return failed
}
