package hostcheck

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/kubling/kubling/internal/fakefs"
)

const procNetRoute = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100A8C0	0003	0	0	0	00000000	0	0	0
eth0	0000A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
cni0	00002A0A	00000000	0001	0	0	0	00FFFFFF	0	0	0
`

func TestRouteOverlap(t *testing.T) {
	routes, err := ParseProcNetRoute(strings.NewReader(procNetRoute))
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 4 || routes[1].Dest.String() != "192.168.0.0/24" || routes[2].Dest.String() != "172.17.0.0/16" {
		t.Fatalf("parsed %v", routes)
	}
	ok := netip.MustParsePrefix("10.42.0.0/16")
	if err := CheckRouteOverlap("--cluster-cidr", ok, routes); err != nil {
		t.Fatalf("default route or kubling's cni0 counted as conflict: %v", err)
	}
	bad := netip.MustParsePrefix("172.16.0.0/12")
	err = CheckRouteOverlap("--service-cidr", bad, routes)
	if err == nil || !strings.Contains(err.Error(), "172.17.0.0/16 on docker0") {
		t.Fatalf("got %v", err)
	}
}

func TestNetworksClearReadsTheHostsRoutes(t *testing.T) {
	h := Host(fakefs.Tree(t, map[string]string{"/proc/net/route": procNetRoute}))
	if err := h.NetworksClear(Network{"--cluster-cidr", netip.MustParsePrefix("10.42.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	err := h.NetworksClear(Network{"--cluster-cidr", netip.MustParsePrefix("10.42.0.0/16")}, Network{"--service-cidr", netip.MustParsePrefix("192.168.0.128/25")})
	if err == nil || !strings.Contains(err.Error(), "--service-cidr 192.168.0.128/25 overlaps the host route 192.168.0.0/24 on eth0") {
		t.Fatalf("got %v", err)
	}
	if err := Host(t.TempDir()).NetworksClear(); err == nil {
		t.Fatal("missing /proc/net/route accepted")
	}
}

func TestSetNodeSysctls(t *testing.T) {
	h := Host(fakefs.Tree(t, map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                 "0\n",
		"/proc/sys/net/bridge/bridge-nf-call-iptables":  "0\n",
		"/proc/sys/net/bridge/bridge-nf-call-ip6tables": "1\n",
	}))
	if err := h.SetNodeSysctls(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ipv4/ip_forward", "bridge/bridge-nf-call-iptables", "bridge/bridge-nf-call-ip6tables"} {
		if got, _ := os.ReadFile(h.path("/proc/sys/net/" + key)); strings.TrimSpace(string(got)) != "1" {
			t.Errorf("%s = %q", key, got)
		}
	}
	noBridge := Host(fakefs.Tree(t, map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n"}))
	if err := noBridge.SetNodeSysctls(); err != ErrNoBrNetfilter {
		t.Fatalf("without br_netfilter: %v", err)
	}
}
