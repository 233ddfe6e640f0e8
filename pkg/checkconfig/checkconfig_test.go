package checkconfig

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kubling/kubling/internal/fakefs"
)

// A route for 10.42.0.0/16 on eth1, in /proc/net/route's little-endian hex.
const routes = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
	"eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
	"eth1\t00002A0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"

func TestGoodHost(t *testing.T) {
	root := fakefs.Tree(t, map[string]string{
		"proc/filesystems": "nodev\toverlay\nnodev\tnfs4\n",
		"proc/sys/net/bridge/bridge-nf-call-iptables": "1",
		"proc/sys/net/ipv4/ip_forward":                "1",
		"proc/sys/net/netfilter/nf_conntrack_max":     "1",
		"proc/self/status":                            "CapBnd:\t000001ffffffffff\n",
		"proc/cgroups":                                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t1\npids\t4\t1\t1\n",
		"proc/swaps":                                  "Filename\tType\tSize\tUsed\tPriority\n",
		"proc/meminfo":                                "MemTotal:        8000000 kB\nMemFree:         1000 kB\n",
		"proc/net/route":                              routes,
		"sbin/mount.nfs":                              "",
		"sys/module/ip_set/parameters/max_sets":       "256",
		"proc/net/ip_vs":                              "",
	})
	results := Run(Options{Root: root, ClusterCIDR: "10.44.0.0/16", ServiceCIDR: "10.45.0.0/16", LookPath: func(p string) (string, error) { return "/usr/sbin/" + p, nil }})
	var buf bytes.Buffer
	if Print(&buf, results) {
		t.Fatalf("a good host failed:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "WARN") {
		t.Fatalf("a good host warned:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "OK    kube-proxy modes: iptables (default), nftables, ipvs") {
		t.Errorf("no ipvs among the kube-proxy modes of a host with ip_vs:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "OK    memory: 7812 MiB") {
		t.Errorf("no memory line for 8 GB:\n%s", buf.String())
	}
}

func TestBadHost(t *testing.T) {
	root := fakefs.Tree(t, map[string]string{
		"proc/filesystems": "nodev\tsysfs\n",
		"proc/self/status": "CapBnd:\t000001fffeffffff\n",
		"proc/cgroups":     "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t0\n",
		"proc/swaps":       "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1024\t0\t-2\n",
		"proc/meminfo":     "MemTotal:        1000000 kB\n",
		"proc/net/route":   routes,
	})
	results := Run(Options{Root: root, ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", LookPath: func(string) (string, error) { return "", errors.New("not found") }})
	var buf bytes.Buffer
	if !Print(&buf, results) {
		t.Fatalf("a bad host passed:\n%s", buf.String())
	}
	out := buf.String()
	for _, want := range []string{
		"FAIL  kernel: br_netfilter",
		"WARN  kernel: overlayfs",
		"FAIL  cgroups: memory controller",
		"FAIL  cgroups: pids controller",
		"WARN  capability CAP_SYS_RESOURCE",
		"WARN  swap",
		"WARN  memory: 976 MiB, under 2 GiB",
		"OK    program: iptables: not on the host: kubling runs its bundled iptables",
		"OK    program: ipset: not on the host: kubling runs its bundled ipset",
		"OK    program: nft: not on the host: kubling runs its bundled nft",
		"OK    kube-proxy modes: iptables (default), nftables (--kube-proxy-arg proxy-mode=nftables); not ipvs",
		"WARN  kernel: ip_set: not loaded",
		"FAIL  program: mount",
		"FAIL  --cluster-cidr 10.42.0.0/16",
		"OK    --service-cidr 10.43.0.0/16",
		"WARN  kernel: NFS client",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
