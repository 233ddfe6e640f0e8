package config

import (
	"slices"

	utilnet "k8s.io/apimachinery/pkg/util/net"

	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/kubling/kubling/pkg/join"
)

func validatedCluster(t *testing.T) Cluster {
	t.Helper()
	s := validServer()
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s.Cluster()
}

func TestValidateParsesTheClusterOnce(t *testing.T) {
	c := validatedCluster(t)
	want := Cluster{ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16"),
		ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local", CNI: "flannel", FlannelBackend: "vxlan",
		NodePortRange: utilnet.PortRange{Base: 30000, Size: 2768}}
	if c != want {
		t.Fatalf("Cluster() = %+v, want %+v", c, want)
	}
	if got := c.Join(); !reflect.DeepEqual(got, join.Cluster{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", CNI: "flannel", FlannelBackend: "vxlan", NodePortRange: "30000-32767"}) {
		t.Fatalf("Join() = %+v: the text a node or server receives changed", got)
	}
	back, err := ParseCluster(c.Join())
	if err != nil || back != c {
		t.Fatalf("ParseCluster(Join()) = %+v, %v", back, err)
	}
	c.DisableNetworkPolicy = true
	if back, err := ParseCluster(c.Join()); err != nil || back != c {
		t.Fatalf("ParseCluster(Join()) with --disable-network-policy = %+v, %v", back, err)
	}
	// Settings saved by a server before the node-port range and the CNI
	// travelled.
	old := c.Join()
	old.NodePortRange, old.CNI = "", ""
	if back, err := ParseCluster(old); err != nil || back.NodePortRange.String() != DefaultNodePortRange || back.CNI != CNIFlannel {
		t.Fatalf("ParseCluster without a node-port range or CNI = %+v, %v", back, err)
	}
	// A newer server's pod network this kubling does not know.
	newer := c.Join()
	newer.CNI = "cilium"
	if _, err := ParseCluster(newer); err == nil || !strings.Contains(err.Error(), `--cni "cilium"`) {
		t.Fatalf("ParseCluster with an unknown CNI: %v", err)
	}
}

func TestCalicoRunsNoFlannel(t *testing.T) {
	s := validServer()
	s.CNI, s.FlannelBackend = CNICalico, ""
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := s.Cluster(); c.CNI != CNICalico || c.FlannelBackend != "" {
		t.Fatalf("Cluster() = %+v", c)
	}
	flannel := validServer()
	flannel.FlannelBackend = ""
	if err := flannel.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := flannel.Validate(); err != nil || flannel.Cluster().CNI != CNIFlannel || flannel.Cluster().FlannelBackend != DefaultFlannelBackend {
		t.Fatalf("no --cni, no --flannel-backend: %+v, %v", flannel.Cluster(), err)
	}
	if slices.Contains(Disableable(), CNICalico) {
		t.Fatalf("--disable offers calico: %v", Disableable())
	}
}

func TestNodePortRangeFromTheAPIServerArgs(t *testing.T) {
	s := validServer()
	s.KubeAPIServerArgs = []string{"v=2", "service-node-port-range=31000-31999"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := s.Cluster().Join().NodePortRange; got != "31000-31999" {
		t.Fatalf("node-port range %q", got)
	}
	s.KubeAPIServerArgs = []string{"service-node-port-range=32000-31000"}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `--kube-apiserver-arg service-node-port-range "32000-31000"`) {
		t.Fatalf("a reversed range: %v", err)
	}
}

func TestCheckSameNamesTheFlagThatDiffers(t *testing.T) {
	c := validatedCluster(t)
	if err := c.CheckSame(c.Join()); err != nil {
		t.Fatalf("the same settings refused: %v", err)
	}
	ipv6 := c
	ipv6.ServiceCIDR = netip.MustParsePrefix("fd00:43::/112")
	ipv6.ClusterDNS = netip.MustParseAddr("fd00:43::a")
	spelled := ipv6.Join()
	spelled.ServiceCIDR, spelled.ClusterDNS = "fd00:43:0:0::/112", "FD00:43::A"
	if err := ipv6.CheckSame(spelled); err != nil {
		t.Fatalf("the same addresses written differently refused: %v", err)
	}
	for _, tc := range []struct {
		change func(*join.Cluster)
		want   string
	}{
		{func(j *join.Cluster) { j.ClusterCIDR = "10.52.0.0/16" }, "--cluster-cidr 10.52.0.0/16 differs from the cluster's 10.42.0.0/16"},
		{func(j *join.Cluster) { j.ServiceCIDR = "10.53.0.0/16" }, "--service-cidr 10.53.0.0/16 differs"},
		{func(j *join.Cluster) { j.ClusterDNS = "10.43.0.11" }, "--cluster-dns 10.43.0.11 differs"},
		{func(j *join.Cluster) { j.ClusterDomain = "edge.local" }, "--cluster-domain edge.local differs"},
		{func(j *join.Cluster) { j.FlannelBackend = "host-gw" }, "--flannel-backend host-gw differs"},
		{func(j *join.Cluster) { j.CNI, j.FlannelBackend = "calico", "" }, "--cni calico differs from the cluster's flannel"},
		{func(j *join.Cluster) { j.DisableNetworkPolicy = true }, "--disable-network-policy true differs"},
		{func(j *join.Cluster) { j.NodePortRange = "31000-31999" }, "--kube-apiserver-arg service-node-port-range 31000-31999 differs"},
		{func(j *join.Cluster) { j.ClusterDNS = "ten" }, `--cluster-dns "ten": not an IP address`},
	} {
		asked := c.Join()
		tc.change(&asked)
		err := c.CheckSame(asked)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSame(%+v) = %v, want %q", asked, err, tc.want)
		}
	}
}

func TestNodeAddressPrecedence(t *testing.T) {
	for _, tc := range []struct{ nodeIP, advertise, want string }{
		{"192.0.2.10", "198.51.100.7", "192.0.2.10"},
		{"", "198.51.100.7", "198.51.100.7"},
		{"::ffff:192.0.2.10", "", "192.0.2.10"},
		{"2001:db8::1", "", "2001:db8::1"},
	} {
		got, err := NodeAddress(tc.nodeIP, tc.advertise)
		if err != nil || got.String() != tc.want {
			t.Errorf("NodeAddress(%q, %q) = %v, %v; want %s", tc.nodeIP, tc.advertise, got, err, tc.want)
		}
	}
	if _, err := NodeAddress("node1", ""); err == nil || !strings.Contains(err.Error(), `--node-ip "node1"`) {
		t.Errorf("a bad --node-ip: %v", err)
	}
	// Neither flag: the default route's interface, as the kubelet would pick.
	if got, err := NodeAddress("", ""); err == nil && !got.IsValid() {
		t.Errorf("NodeAddress with no flags returned no address and no error")
	}
}

func TestValidateParsesTheTokenOnce(t *testing.T) {
	s := validServer()
	s.Token = "KL10123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef::0123456789abcdef"
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	tok, ok := s.ParsedToken()
	if !ok || tok.Secret != "0123456789abcdef" || tok.CAHash == "" {
		t.Fatalf("ParsedToken() = %+v, %v", tok, ok)
	}
	if _, ok := validServer().ParsedToken(); ok {
		t.Fatal("ParsedToken() reports a token that was not given")
	}
}
