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
	r := &report{o: o, host: hostcheck.Host(o.Root)}
	r.kernel()
	r.cgroups()
	r.swap()
	r.memory()
	r.programs()
	r.ports()
	r.networks()
	r.gpus()
	return r.out
}

// report collects the results of one run.
type report struct {
	o    Options
	host hostcheck.Host
	out  []Result
}

func (r *report) add(l Level, what, note string) { r.out = append(r.out, Result{l, what, note}) }

func (r *report) exists(p string) bool {
	_, err := os.Stat(filepath.Join(r.o.Root, p))
	return err == nil
}

// kernel: overlayfs, bridge netfilter, forwarding, conntrack, ip_set, NFS client.
func (r *report) kernel() {
	if facts, _ := r.host.Detect(); facts.Overlay {
		r.add(OK, "kernel: overlayfs", "")
	} else {
		r.add(Warn, "kernel: overlayfs", "missing: containerd falls back to the slower native snapshotter")
	}
	if err := r.host.BrNetfilter(); err == nil {
		r.add(OK, "kernel: br_netfilter", "")
	} else {
		r.add(Fail, "kernel: br_netfilter", "missing: load it with `modprobe br_netfilter`")
	}
	if r.exists("/proc/sys/net/ipv4/ip_forward") {
		r.add(OK, "kernel: IPv4 forwarding", "kubling sets net.ipv4.ip_forward=1 at start")
	} else {
		r.add(Fail, "kernel: IPv4 forwarding", "no /proc/sys/net/ipv4/ip_forward")
	}
	if r.exists("/proc/sys/net/netfilter/nf_conntrack_max") {
		r.add(OK, "kernel: conntrack", "")
	} else {
		r.add(Warn, "kernel: conntrack", "no /proc/sys/net/netfilter: Services need nf_conntrack (`modprobe nf_conntrack`)")
	}
	// ip_set shows under /sys/module once loaded (built in or a module);
	// the ipset command loads it when it can.
	if r.exists("sys/module/ip_set") {
		r.add(OK, "kernel: ip_set", "NetworkPolicy is enforced")
	} else {
		r.add(Warn, "kernel: ip_set", "not loaded: NetworkPolicy needs it (`modprobe ip_set`), or start the server with --disable-network-policy")
	}
	// kube-proxy's modes: iptables (the default) runs everywhere kubling
	// does; nftables needs the kernel's nf_tables, which the bundled
	// iptables already uses in its default mode; ipvs needs ip_vs.
	if r.exists("proc/net/ip_vs") || r.exists("sys/module/ip_vs") {
		r.add(OK, "kube-proxy modes", "iptables (default), nftables, ipvs (--kube-proxy-arg proxy-mode=…)")
	} else {
		r.add(OK, "kube-proxy modes", "iptables (default), nftables (--kube-proxy-arg proxy-mode=nftables); not ipvs: the kernel has no ip_vs")
	}
	if p := r.host.DetectNFS().Problem(); p != "" {
		r.add(Warn, "kernel: NFS client", p)
	} else {
		r.add(OK, "kernel: NFS client", "")
	}
}

// cgroups: version, driver, the controllers a node needs, and the
// capability pods' OOM scores need.
func (r *report) cgroups() {
	facts, err := r.host.Detect()
	if err != nil {
		r.add(Fail, "cgroups", err.Error())
		return
	}
	version := "v1 (kubelet runs with failCgroupV1=false)"
	if facts.CgroupV2 {
		version = "v2"
	}
	r.add(OK, "cgroups: "+version, "driver "+facts.CgroupDriver)
	for _, ctrl := range missingControllers(r.o.Root, facts.CgroupV2) {
		r.add(Fail, "cgroups: "+ctrl+" controller", "not enabled")
	}
	if facts.CapSysResource {
		r.add(OK, "capability CAP_SYS_RESOURCE", "")
	} else {
		r.add(Warn, "capability CAP_SYS_RESOURCE", "missing: kubling sets containerd's restrict_oom_score_adj")
	}
}

func (r *report) swap() {
	if swaps, err := os.ReadFile(filepath.Join(r.o.Root, "/proc/swaps")); err == nil && len(bytes.Split(bytes.TrimSpace(swaps), []byte("\n"))) > 1 {
		r.add(Warn, "swap", "on: the kubelet runs with failSwapOn=false and gives pods no swap")
	} else {
		r.add(OK, "swap", "off")
	}
}

// smallMemory is where check-config says what to expect of a small device.
const smallMemory = 2 << 30

// memory: the machine's memory, with a warning under 2 GiB.
func (r *report) memory() {
	data, err := os.ReadFile(filepath.Join(r.o.Root, "/proc/meminfo"))
	if err != nil {
		return
	}
	var kb int64
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			if _, err := fmt.Sscan(rest, &kb); err != nil {
				return
			}
		}
	}
	if kb == 0 {
		return
	}
	total := fmt.Sprintf("%d MiB", kb/1024)
	if kb*1024 >= smallMemory {
		r.add(OK, "memory", total)
		return
	}
	r.add(Warn, "memory", total+", under 2 GiB: idle, a server with its node and CoreDNS takes about 400 MB and an agent about 115 MB (docs/benchmarks.md); pods get what is left")
}

// programs on the host that the node's components call.
func (r *report) programs() {
	if p, err := r.o.LookPath("iptables"); err == nil {
		r.add(OK, "program: iptables", p+" (the host's; --prefer-bundled-bin runs kubling's own)")
	} else {
		r.add(OK, "program: iptables", "not on the host: kubling runs its bundled iptables")
	}
	for _, tool := range []string{"ipset", "nft"} {
		if p, err := r.o.LookPath(tool); err == nil {
			r.add(OK, "program: "+tool, p+" (the host's; --prefer-bundled-bin runs kubling's own)")
		} else {
			r.add(OK, "program: "+tool, "not on the host: kubling runs its bundled "+tool)
		}
	}
	for _, prog := range hostcheck.NodePrograms {
		if p, err := r.o.LookPath(prog.Name); err == nil {
			r.add(OK, "program: "+prog.Name, p)
		} else {
			r.add(Fail, "program: "+prog.Name, "missing ("+prog.Why+"): install "+prog.Package)
		}
	}
}

func (r *report) ports() {
	for _, p := range r.o.Ports {
		if err := hostcheck.PortsFree([]hostcheck.Port{p}); err != nil {
			r.add(Warn, fmt.Sprintf("port %d (%s)", p.Port, p.What), "in use: is kubling already running?")
		} else {
			r.add(OK, fmt.Sprintf("port %d (%s)", p.Port, p.What), "free")
		}
	}
}

// networks: the cluster and service CIDRs against the host's routes.
func (r *report) networks() {
	if !r.exists("/proc/net/route") {
		return
	}
	for _, n := range []struct{ flag, cidr string }{{"--cluster-cidr", r.o.ClusterCIDR}, {"--service-cidr", r.o.ServiceCIDR}} {
		p, err := config.ParseCIDR(n.flag, n.cidr)
		if err != nil {
			r.add(Fail, n.flag, err.Error())
			continue
		}
		if err := r.host.NetworksClear(hostcheck.Network{Flag: n.flag, Prefix: p}); err != nil {
			r.add(Fail, n.flag+" "+n.cidr, err.Error())
		} else {
			r.add(OK, n.flag+" "+n.cidr, "no host route overlaps")
		}
	}
}

// gpus: information only.
func (r *report) gpus() {
	if gpu := nvidia.Detect(r.o.Root, os.Getenv("PATH")); gpu.Driver != "" {
		level := OK
		if !gpu.Usable() {
			level = Warn
		}
		r.add(level, "NVIDIA", gpu.Summary())
	}
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
