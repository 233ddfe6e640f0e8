package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func validServer() *Server {
	return &Server{
		Node:                Node{DataDir: "/var/lib/kubling"},
		WriteKubeconfigMode: DefaultKubeconfigMode,
		HTTPSPort:           DefaultHTTPSPort,
		ClusterCIDR:         DefaultClusterCIDR,
		ServiceCIDR:         DefaultServiceCIDR,
		ClusterDomain:       DefaultClusterDomain,
		FlannelBackend:      "vxlan",
		NFSReclaimPolicy:    "Delete",
		NFSDefaultClass:     "auto",
		Snapshots:           Snapshots{Schedule: DefaultSnapshotSchedule, Retention: DefaultSnapshotRetention},
	}
}

func TestDefaultsAreValidAndDeriveDNS(t *testing.T) {
	s := validServer()
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if s.ClusterDNS != "10.43.0.10" {
		t.Fatalf("cluster DNS = %q, want 10.43.0.10", s.ClusterDNS)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if got := s.Cluster().APIServerServiceIP().String(); got != "10.43.0.1" {
		t.Fatalf("apiserver service IP = %s", got)
	}
}

func TestDisableTakesAddonsAndControllers(t *testing.T) {
	s := validServer()
	s.Disable = []string{"coredns", "servicelb"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if !s.Disabled("servicelb") || s.Disabled("nfs-csi") {
		t.Fatalf("Disabled: servicelb %v, nfs-csi %v", s.Disabled("servicelb"), s.Disabled("nfs-csi"))
	}
}

func TestLocalStoragePath(t *testing.T) {
	s := validServer()
	if got := s.LocalStoragePath(); got != "/var/lib/kubling/storage" {
		t.Errorf("default %q", got)
	}
	s.DefaultLocalStoragePath = "/srv/volumes/"
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := s.LocalStoragePath(); got != "/srv/volumes" {
		t.Errorf("given %q", got)
	}
}

func TestExternalIPs(t *testing.T) {
	s := validServer()
	s.NodeExternalIPs = []string{"2001:db8::7", "203.0.113.7"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := s.ExternalIPv4(); got != "203.0.113.7" {
		t.Fatalf("ExternalIPv4 = %q", got)
	}
}

func TestValidateRejects(t *testing.T) {
	aFile := filepath.Join(t.TempDir(), "volumes")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*Server)
		want   string
	}{
		{"malformed cluster cidr", func(s *Server) { s.ClusterCIDR = "10.42.0.0/33" }, "--cluster-cidr \"10.42.0.0/33\": not a CIDR"},
		{"garbage service cidr", func(s *Server) { s.ServiceCIDR = "banana" }, "--service-cidr \"banana\": not a CIDR"},
		{"host bits", func(s *Server) { s.ClusterCIDR = "10.42.1.0/16" }, "did you mean 10.42.0.0/16"},
		{"overlap", func(s *Server) { s.ServiceCIDR = "10.42.128.0/20" }, "overlaps --service-cidr"},
		{"cluster too small", func(s *Server) { s.ClusterCIDR = "10.42.0.0/25" }, "too small"},
		{"service too large", func(s *Server) { s.ServiceCIDR = "10.0.0.0/8"; s.ClusterCIDR = "172.16.0.0/16" }, "too large"},
		{"dns outside", func(s *Server) { s.ClusterDNS = "10.44.0.10" }, "outside --service-cidr"},
		{"mode", func(s *Server) { s.WriteKubeconfigMode = "rw" }, "--write-kubeconfig-mode"},
		{"mode too big", func(s *Server) { s.WriteKubeconfigMode = "7777" }, "--write-kubeconfig-mode"},
		{"port", func(s *Server) { s.HTTPSPort = 70000 }, "--https-listen-port"},
		{"bind", func(s *Server) { s.BindAddress = "localhost" }, "--bind-address"},
		{"flannel backend", func(s *Server) { s.FlannelBackend = "wireguard-native" }, "--flannel-backend \"wireguard-native\""},
		{"unknown cni", func(s *Server) { s.CNI = "cilium" }, "--cni \"cilium\": want flannel or calico"},
		{"calico with a flannel backend", func(s *Server) { s.CNI = "calico" }, "--flannel-backend vxlan: --cni calico runs no flannel"},
		{"calico on IPv6", func(s *Server) {
			s.CNI, s.FlannelBackend, s.ClusterCIDR, s.ServiceCIDR = "calico", "", "fd42::/16", "fd00:43::/112"
		}, "kubling's Calico is IPv4 only"},
		{"calico without policy", func(s *Server) { s.CNI, s.FlannelBackend, s.DisableNetworkPolicy = "calico", "", true }, "--disable-network-policy: with --cni calico"},
		{"disable unknown", func(s *Server) { s.Disable = []string{"traefik"} }, "--disable \"traefik\": not a bundled add-on or controller (have coredns,"},
		{"nfs server alone", func(s *Server) { s.NFSServer = "10.0.0.5" }, "go together"},
		{"nfs share relative", func(s *Server) { s.NFSServer, s.NFSShare = "10.0.0.5", "export" }, "absolute path"},
		{"nfs server with path", func(s *Server) { s.NFSServer, s.NFSShare = "10.0.0.5/x", "/export" }, "host name or IP"},
		{"nfs reclaim policy", func(s *Server) { s.NFSReclaimPolicy = "Recycle" }, "want Delete or Retain"},
		{"nfs default class", func(s *Server) { s.NFSDefaultClass = "yes" }, "want auto, true or false"},
		{"local storage path relative", func(s *Server) { s.DefaultLocalStoragePath = "volumes" }, "--default-local-storage-path \"volumes\": want an absolute path"},
		{"local storage path a system folder", func(s *Server) { s.DefaultLocalStoragePath = "/proc/x" }, "/proc is a system folder"},
		{"local storage path the root", func(s *Server) { s.DefaultLocalStoragePath = "/" }, "/ is a system folder"},
		{"local storage path a file", func(s *Server) { s.DefaultLocalStoragePath = "/bin/sh" }, "/bin is a system folder"},
		{"local storage path an existing file", func(s *Server) { s.DefaultLocalStoragePath = aFile }, "exists and is not a folder"},
		{"system default registry", func(s *Server) { s.SystemDefaultRegistry = "https://mirror" }, "--system-default-registry"},
		{"node name", func(s *Server) { s.NodeName = "bad_name" }, "--node-name"},
		{"node ip", func(s *Server) { s.NodeIP = "10.0.0.300" }, "--node-ip"},
		{"node external ip", func(s *Server) { s.NodeExternalIPs = []string{"203.0.113"} }, "--node-external-ip \"203.0.113\": not an IP address"},
		{"node external ip loopback", func(s *Server) { s.NodeExternalIPs = []string{"127.0.0.1"} }, "--node-external-ip \"127.0.0.1\": not an address other machines"},
		{"node external ips of a family", func(s *Server) { s.NodeExternalIPs = []string{"203.0.113.1", "203.0.113.2"} }, "one address per IP family (already 203.0.113.1)"},
		{"node label", func(s *Server) { s.NodeLabels = []string{"nolabel"} }, "--node-label"},
		{"kubelet arg", func(s *Server) { s.KubeletArgs = []string{"max-pods"} }, "--kubelet-arg"},
		{"restore without reset", func(s *Server) { s.Datastore.RestorePath = "/tmp/snap" }, "--cluster-reset-restore-path goes with --cluster-reset"},
		{"reset external", func(s *Server) { s.Datastore.ClusterReset, s.Datastore.Endpoint = true, "postgres://db/k" }, "--cluster-reset is for the embedded datastores"},
		{"snapshot cron", func(s *Server) { s.Snapshots.Schedule = "every noon" }, "--snapshot-schedule-cron \"every noon\""},
		{"snapshot cron fields", func(s *Server) { s.Snapshots.Schedule = "0 61 * * *" }, "--snapshot-schedule-cron"},
		{"snapshot retention", func(s *Server) { s.Snapshots.Retention = 0 }, "--snapshot-retention 0"},
		{"server without token", func(s *Server) { s.Datastore.JoinURL = "https://10.0.0.1:6443" }, "--server joins this server to a cluster: give the cluster's --token"},
		{"server url", func(s *Server) {
			s.Datastore.JoinURL, s.Token = "10.0.0.1:6443", "KL1"+strings.Repeat("ab", 32)+"::abcdef.0123456789abcdef"
		}, "--server \"10.0.0.1:6443\": want https://<host>:<port>"},
		{"server with external datastore", func(s *Server) {
			s.Datastore.JoinURL, s.Token, s.Datastore.Endpoint = "https://10.0.0.1:6443", "KL1"+strings.Repeat("ab", 32)+"::abcdef.0123456789abcdef", "postgres://db/k"
		}, "give the same --datastore-endpoint and --token, without --server"},
		{"server with cluster-init", func(s *Server) {
			s.Datastore.JoinURL, s.Token, s.Datastore.ClusterInit = "https://10.0.0.1:6443", "KL1"+strings.Repeat("ab", 32)+"::abcdef.0123456789abcdef", true
		}, "--server joins an existing cluster and --cluster-init starts a new one"},
		{"server with bare secret", func(s *Server) { s.Datastore.JoinURL, s.Token = "https://10.0.0.1:6443", "0123456789abcdef0123" }, "--server needs the full token"},
		{"agent token short", func(s *Server) { s.AgentToken = "short" }, "--agent-token: the secret must be at least 16 characters"},
		{"agent token is the server token", func(s *Server) { s.Token, s.AgentToken = "a-secret-of-twenty-chars", "a-secret-of-twenty-chars" }, "--agent-token must differ from --token"},
		{"agent token damaged", func(s *Server) { s.AgentToken = "KL1abc::x" }, "--agent-token: token"},
		{"component arg", func(s *Server) { s.KubeSchedulerArgs = []string{"v=2", "oops"} }, "--kube-scheduler-arg: component argument \"oops\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validServer()
			c.mutate(s)
			if err := s.Normalize(); err != nil {
				t.Fatal(err)
			}
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestServerTokenSecretLength(t *testing.T) {
	for given, ok := range map[string]bool{
		"short-secret":     false,
		"sixteen-chars-ok": true,
		"KL1" + strings.Repeat("ab", 32) + "::tooshort":         false,
		"KL1" + strings.Repeat("ab", 32) + "::0123456789abcdef": true,
	} {
		s := validServer()
		s.Token = given
		if err := s.Normalize(); err != nil {
			t.Fatal(err)
		}
		err := s.Validate()
		if ok && err != nil {
			t.Errorf("%q refused: %v", given, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "at least 16 characters") || strings.Contains(err.Error(), given)) {
			t.Errorf("%q: got %v, want a refusal that does not repeat the token", given, err)
		}
	}
}

// TestValidNodeName accepts what the apiserver accepts for a Node and
// whose password Secret name fits, nothing else.
func TestValidNodeName(t *testing.T) {
	longest := strings.Repeat("a", MaxNodeNameLength)
	if len(longest+".node-password.kubling") != 253 {
		t.Fatalf("MaxNodeNameLength %d leaves the password Secret's name at %d characters, want 253", MaxNodeNameLength, len(longest+".node-password.kubling"))
	}
	for _, n := range []string{"a", "node-1", "worker.example.com", "10.0.0.1", longest[:63] + "." + longest[:63]} {
		if !ValidNodeName(n) {
			t.Errorf("ValidNodeName(%q) = false, want true", n)
		}
	}
	for _, n := range []string{"", "a..b", ".a", "a.", "-a", "a-", "a.-b", "A", "a_b", "a b", "a/b", longest + "a", strings.Repeat("a", 240), "é"} {
		if ValidNodeName(n) {
			t.Errorf("ValidNodeName(%q) = true, want false", n)
		}
	}
}

// --token-file keeps the server's secret off the command line.
func TestServerTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  a-secret-of-twenty-chars\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := validServer()
	s.TokenFile = file
	if err := s.Normalize(); err != nil || s.Token != "a-secret-of-twenty-chars" {
		t.Fatalf("Normalize: %v, token %q", err, s.Token)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	both := validServer()
	both.Token, both.TokenFile = "a-secret-of-twenty-chars", file
	if err := both.Normalize(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("--token and --token-file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{empty, filepath.Join(dir, "none")} {
		s := validServer()
		s.TokenFile = f
		if err := s.Normalize(); err == nil || !strings.HasPrefix(err.Error(), "--token-file") {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// --agent-token-file reads the agent token; both forms are refused.
func TestServerAgentTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent-token")
	if err := os.WriteFile(file, []byte("KL1"+strings.Repeat("ab", 32)+"::abcdef.0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := validServer()
	s.AgentTokenFile = file
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.ParsedAgentToken(); !ok || got.Secret != "abcdef.0123456789abcdef" || got.CAHash != strings.Repeat("ab", 32) {
		t.Errorf("parsed agent token %+v %v", got, ok)
	}
	both := validServer()
	both.AgentToken, both.AgentTokenFile = "a-secret-of-twenty-chars", file
	if err := both.Normalize(); err == nil || !strings.Contains(err.Error(), "give --agent-token or --agent-token-file, not both") {
		t.Errorf("--agent-token and --agent-token-file: %v", err)
	}
}

// --datastore-endpoint-file keeps the datastore's password off the command line.
func TestDatastoreEndpointFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "endpoint")
	if err := os.WriteFile(file, []byte("postgres://kubling:s3cret@db:5432/kubling\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := validServer()
	s.EndpointFile = file
	if err := s.Normalize(); err != nil || s.Endpoint != "postgres://kubling:s3cret@db:5432/kubling" {
		t.Fatalf("Normalize: %v, endpoint %q", err, s.Endpoint)
	}
	both := validServer()
	both.Endpoint, both.EndpointFile = "postgres://db/k", file
	if err := both.Normalize(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{empty, filepath.Join(dir, "none")} {
		s := validServer()
		s.EndpointFile = f
		if err := s.Normalize(); err == nil || !strings.HasPrefix(err.Error(), "--datastore-endpoint-file") {
			t.Errorf("%s: %v", f, err)
		}
	}
}
