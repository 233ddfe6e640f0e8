// Package config holds kubling's settings, their defaults and the checks
// that need no root and no network, so they can be unit-tested quickly.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/componentargs"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/token"
)

// Defaults that users script against.
const (
	DefaultDataDir         = datadir.Default
	DefaultKubeconfig      = "/etc/kubling/kubling.yaml"
	DefaultKubeconfigMode  = "0600"
	DefaultClusterCIDR     = "10.42.0.0/16"
	DefaultServiceCIDR     = "10.43.0.0/16"
	DefaultClusterDomain   = "cluster.local"
	DefaultHTTPSPort       = 6443
	DefaultNodeCIDRMaskLen = 24
)

// Server is the configuration of `kubling server`: the control plane and,
// unless DisableAgent, its own node.
type Server struct {
	Node
	WriteKubeconfig     string
	WriteKubeconfigMode string
	Token               string
	TokenFile           string
	// AgentToken is what agents join with (--agent-token); the server
	// token joins servers and opens the cluster's sealed keys.
	AgentToken       string
	AgentTokenFile   string
	TLSSANs          []string
	BindAddress      string
	AdvertiseAddress string
	HTTPSPort        int
	ClusterCIDR      string
	ServiceCIDR      string
	ClusterDNS       string
	ClusterDomain    string
	DisableAgent     bool
	Datastore
	Snapshots
	Disable []string
	// SystemDefaultRegistry replaces the registry of bundled add-on images.
	SystemDefaultRegistry string
	// NFS StorageClass (nfs-csi add-on).
	NFSServer, NFSShare string
	NFSMountOptions     []string
	NFSReclaimPolicy    string
	// NFSDefaultClass is auto (default class when no other is), true or false.
	NFSDefaultClass string
	// DefaultLocalStoragePath is where local-path volumes are made on
	// every node (empty: <data-dir>/storage).
	DefaultLocalStoragePath string
	// CNI is the pod network: flannel (kubling's own) or calico (an
	// add-on whose pods run Calico in VXLAN mode).
	CNI string
	// FlannelBackend is flannel's (empty: vxlan with flannel, none else).
	FlannelBackend string
	// DisableNetworkPolicy turns off NetworkPolicy enforcement on every node.
	DisableNetworkPolicy bool

	// AuditPolicyFile replaces kubling's audit policy; DisableAudit turns
	// the audit log off.
	AuditPolicyFile string
	DisableAudit    bool

	KubeAPIServerArgs         []string
	KubeSchedulerArgs         []string
	KubeControllerManagerArgs []string

	// Parsed by Validate (Cluster, ParsedToken).
	cluster    Cluster
	token      token.Token
	agentToken token.Token
}

// Normalize fills derived defaults (the cluster DNS address comes from the
// service CIDR) and cleans paths.
func (s *Server) Normalize() error {
	if err := s.Node.Normalize(); err != nil {
		return err
	}
	for flag, path := range map[string]*string{"--write-kubeconfig": &s.WriteKubeconfig, "--audit-policy-file": &s.AuditPolicyFile} {
		if *path == "" {
			continue
		}
		abs, err := filepath.Abs(*path)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		*path = abs
	}
	if err := fromFile(&s.Token, s.TokenFile, "--token"); err != nil {
		return err
	}
	if err := fromFile(&s.AgentToken, s.AgentTokenFile, "--agent-token"); err != nil {
		return err
	}
	if err := s.Datastore.normalize(); err != nil {
		return err
	}
	if err := s.Snapshots.normalize(); err != nil {
		return err
	}
	if s.CNI == "" {
		s.CNI = CNIFlannel
	}
	if s.CNI == CNIFlannel && s.FlannelBackend == "" {
		s.FlannelBackend = DefaultFlannelBackend
	}
	if s.ClusterDNS == "" && s.ServiceCIDR != "" {
		p, err := netip.ParsePrefix(s.ServiceCIDR)
		if err == nil {
			s.ClusterDNS = nthAddr(p.Masked(), 10).String()
		}
	}
	return nil
}

// Validate checks the settings on their own; host checks (routes, ports,
// permissions) live in pkg/hostcheck and run when the server starts.
func (s *Server) Validate() error {
	for _, check := range []func() error{s.validateAPI, s.validateNetworks, s.validateAddons, s.Datastore.validate, s.Snapshots.validate} {
		if err := check(); err != nil {
			return err
		}
	}
	// Without a node the node name is unused; the other node flags are still checked.
	if err := s.Node.validate(!s.DisableAgent); err != nil {
		return err
	}
	return checkOverrides(map[string][]string{"--kube-apiserver-arg": s.KubeAPIServerArgs, "--kube-scheduler-arg": s.KubeSchedulerArgs, "--kube-controller-manager-arg": s.KubeControllerManagerArgs})
}

// MinTokenSecret is the shortest join secret a user may give with --token.
const MinTokenSecret = 16

// validateAPI checks how the apiserver is served and handed out, and the
// join token a user gives.
func (s *Server) validateAPI() error {
	if s.Token != "" {
		t, err := token.Parse(s.Token)
		if err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		if len(t.Secret) < MinTokenSecret {
			return fmt.Errorf("--token: the secret must be at least %d characters (leave --token out and kubling makes one; an existing cluster keeps its token without it)", MinTokenSecret)
		}
		s.token = t
	}
	if err := s.validateAgentToken(); err != nil {
		return err
	}
	if err := s.validateJoin(); err != nil {
		return err
	}
	if _, err := s.KubeconfigMode(); err != nil {
		return err
	}
	if s.AuditPolicyFile != "" && s.DisableAudit {
		return fmt.Errorf("--audit-policy-file and --disable-audit: give one or the other")
	}
	if s.HTTPSPort < 1 || s.HTTPSPort > 65535 {
		return fmt.Errorf("--https-listen-port %d: must be between 1 and 65535", s.HTTPSPort)
	}
	if s.BindAddress != "" && net.ParseIP(s.BindAddress) == nil {
		return fmt.Errorf("--bind-address %q: not an IP address", s.BindAddress)
	}
	if s.AdvertiseAddress != "" && net.ParseIP(s.AdvertiseAddress) == nil {
		return fmt.Errorf("--advertise-address %q: not an IP address", s.AdvertiseAddress)
	}
	return nil
}

// validateAgentToken checks --agent-token: a secret of its own, so that an
// agent's disk holds nothing that joins a server or opens the cluster's keys.
func (s *Server) validateAgentToken() error {
	if s.AgentToken == "" {
		return nil
	}
	t, err := token.Parse(s.AgentToken)
	if err != nil {
		return fmt.Errorf("--agent-token: %w", err)
	}
	if len(t.Secret) < MinTokenSecret {
		return fmt.Errorf("--agent-token: the secret must be at least %d characters (leave --agent-token out and kubling makes one)", MinTokenSecret)
	}
	if s.Token != "" && t.Secret == s.token.Secret {
		return errors.New("--agent-token must differ from --token: the server token opens the cluster's keys, the agent token must not")
	}
	s.agentToken = t
	return nil
}

// validateJoin checks --server (joining another server's cluster) against
// the flags it needs and those it excludes.
func (s *Server) validateJoin() error {
	if s.JoinURL == "" {
		return nil
	}
	if _, err := join.ServerURL(s.JoinURL); err != nil {
		return err
	}
	switch {
	case s.Token == "":
		return errors.New("--server joins this server to a cluster: give the cluster's --token (the full token in the first server's <data-dir>/server/token)")
	case s.Endpoint != "":
		return errors.New("--server joins a cluster on embedded etcd; servers on an external datastore share it directly: give the same --datastore-endpoint and --token, without --server")
	case s.ClusterInit:
		return errors.New("--server joins an existing cluster and --cluster-init starts a new one: give one or the other")
	}
	if s.token.CAHash == "" {
		return errors.New("--server needs the full token (KL1<CA hash>::<secret>, from the first server's <data-dir>/server/token), not a bare secret: the hash is how this server checks the cluster it joins")
	}
	return nil
}

// validateNetworks checks the cluster's address ranges, DNS and pod network.
func (s *Server) validateNetworks() error {
	cluster, err := ParseCIDR("--cluster-cidr", s.ClusterCIDR)
	if err != nil {
		return err
	}
	if cluster.Bits() > DefaultNodeCIDRMaskLen {
		return fmt.Errorf("--cluster-cidr %s: too small, each node takes a /%d", s.ClusterCIDR, DefaultNodeCIDRMaskLen)
	}
	service, err := ParseCIDR("--service-cidr", s.ServiceCIDR)
	if err != nil {
		return err
	}
	if service.Bits() < 12 {
		return fmt.Errorf("--service-cidr %s: too large, the apiserver accepts at most a /12", s.ServiceCIDR)
	}
	if cluster.Overlaps(service) {
		return fmt.Errorf("--cluster-cidr %s overlaps --service-cidr %s", s.ClusterCIDR, s.ServiceCIDR)
	}
	dns, err := netip.ParseAddr(s.ClusterDNS)
	if err != nil {
		return fmt.Errorf("--cluster-dns %q: not an IP address", s.ClusterDNS)
	}
	if !service.Contains(dns) {
		return fmt.Errorf("--cluster-dns %s is outside --service-cidr %s", s.ClusterDNS, s.ServiceCIDR)
	}
	if s.ClusterDomain == "" {
		return fmt.Errorf("--cluster-domain must not be empty")
	}
	switch {
	case s.CNI == CNICalico && s.FlannelBackend != "":
		return fmt.Errorf("--flannel-backend %s: --cni calico runs no flannel (Calico uses VXLAN)", s.FlannelBackend)
	case s.CNI == CNICalico && s.DisableNetworkPolicy:
		return fmt.Errorf("--disable-network-policy: with --cni calico, Calico enforces NetworkPolicy")
	case s.CNI == CNICalico && !cluster.Addr().Is4():
		return fmt.Errorf("--cluster-cidr %s: kubling's Calico is IPv4 only", s.ClusterCIDR)
	case s.CNI != CNIFlannel && s.CNI != CNICalico:
		return fmt.Errorf("--cni %q: want flannel or calico", s.CNI)
	}
	if s.CNI == CNIFlannel && !slices.Contains([]string{"vxlan", "host-gw", "none"}, s.FlannelBackend) {
		hint := ""
		if s.FlannelBackend == "wireguard-native" {
			hint = " (wireguard-native needs WireGuard in the kernel; not supported yet)"
		}
		return fmt.Errorf("--flannel-backend %q: want vxlan, host-gw or none%s", s.FlannelBackend, hint)
	}
	var nodePorts string // the last override wins, as in the apiserver's flags
	for _, o := range s.KubeAPIServerArgs {
		if k, v, err := componentargs.ParseOverride(o); err == nil && k == "service-node-port-range" {
			nodePorts = v
		}
	}
	ports, err := parseNodePortRange(nodePorts)
	if err != nil {
		return fmt.Errorf("--kube-apiserver-arg %w", err)
	}
	s.cluster = Cluster{ClusterCIDR: cluster, ServiceCIDR: service, ClusterDNS: dns, ClusterDomain: s.ClusterDomain, CNI: s.CNI, FlannelBackend: s.FlannelBackend,
		DisableNetworkPolicy: s.DisableNetworkPolicy, NodePortRange: ports}
	return nil
}

// validateAddons checks the settings of the bundled add-ons.
func (s *Server) validateAddons() error {
	if s.SystemDefaultRegistry != "" {
		if _, err := manifests.Image("registry.k8s.io/pause:1", s.SystemDefaultRegistry); err != nil || strings.Contains(s.SystemDefaultRegistry, "://") {
			return fmt.Errorf("--system-default-registry %q: want a registry host such as mirror.example.com:5000", s.SystemDefaultRegistry)
		}
	}
	if (s.NFSServer == "") != (s.NFSShare == "") {
		return fmt.Errorf("--nfs-server and --nfs-share go together")
	}
	if s.NFSShare != "" && !strings.HasPrefix(s.NFSShare, "/") {
		return fmt.Errorf("--nfs-share %q: want an absolute path on the NFS server, such as /export/k8s", s.NFSShare)
	}
	if strings.ContainsAny(s.NFSServer, " /") {
		return fmt.Errorf("--nfs-server %q: want a host name or IP", s.NFSServer)
	}
	if !slices.Contains([]string{"Delete", "Retain"}, s.NFSReclaimPolicy) {
		return fmt.Errorf("--nfs-reclaim-policy %q: want Delete or Retain", s.NFSReclaimPolicy)
	}
	if !slices.Contains([]string{"auto", "true", "false"}, s.NFSDefaultClass) {
		return fmt.Errorf("--nfs-default-class %q: want auto, true or false", s.NFSDefaultClass)
	}
	if p := s.DefaultLocalStoragePath; p != "" {
		if err := checkLocalStoragePath(p); err != nil {
			return fmt.Errorf("--default-local-storage-path %q: %w", p, err)
		}
	}
	for _, d := range s.Disable {
		if known := Disableable(); !slices.Contains(known, d) {
			return fmt.Errorf("--disable %q: not a bundled add-on or controller (have %s)", d, strings.Join(known, ", "))
		}
	}
	return nil
}

// LocalStoragePath is where local-path volumes are made on every node.
func (s *Server) LocalStoragePath() string {
	if s.DefaultLocalStoragePath != "" {
		return filepath.Clean(s.DefaultLocalStoragePath)
	}
	return s.Layout().LocalStorage()
}

// checkLocalStoragePath refuses a volume folder that is not absolute, is a
// system folder whose content is not the user's, or exists as a file.
func checkLocalStoragePath(p string) error {
	if !filepath.IsAbs(p) {
		return errors.New("want an absolute path, such as /srv/kubling-volumes")
	}
	clean := filepath.Clean(p)
	for _, system := range []string{"/", "/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/usr", "/bin", "/sbin", "/lib"} {
		if clean == system || system != "/" && strings.HasPrefix(clean, system+"/") {
			return fmt.Errorf("%s is a system folder", system)
		}
	}
	if fi, err := os.Stat(clean); err == nil && !fi.IsDir() {
		return errors.New("exists and is not a folder")
	}
	return nil
}

// Controllers are the built-in cluster controllers --disable turns off.
func Controllers() []string { return []string{"servicelb"} }

// Disableable is what --disable accepts: the bundled add-ons (but the pod
// networks, which --cni chooses) and the built-in controllers, sorted.
func Disableable() []string {
	var names []string
	for _, n := range manifests.Names() {
		if !slices.Contains(CNIAddons(), n) {
			names = append(names, n)
		}
	}
	names = append(names, Controllers()...)
	slices.Sort(names)
	return names
}

// The pod networks --cni chooses from: kubling's flannel (in-process on
// every node) or Calico (the add-on of that name, pods on every node).
const (
	CNIFlannel = "flannel"
	CNICalico  = "calico"
)

// DefaultFlannelBackend is flannel's backend unless --flannel-backend says.
const DefaultFlannelBackend = "vxlan"

// CNIAddons are the bundled add-ons that are a pod network, deployed only
// when --cni names them.
func CNIAddons() []string { return []string{CNICalico} }

// Disabled says --disable names the add-on or controller.
func (s *Server) Disabled(name string) bool { return slices.Contains(s.Disable, name) }

// KubeconfigMode parses --write-kubeconfig-mode as an octal file mode.
func (s *Server) KubeconfigMode() (uint32, error) {
	mode, err := strconv.ParseUint(s.WriteKubeconfigMode, 8, 32)
	if err != nil || mode > 0o777 {
		return 0, fmt.Errorf("--write-kubeconfig-mode %q: want an octal mode such as 0600", s.WriteKubeconfigMode)
	}
	return uint32(mode), nil
}

// ParseCIDR parses a network in CIDR form and insists on its network address
// (10.42.0.0/16, not 10.42.1.1/16), naming the flag in the error.
func ParseCIDR(flag, value string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(value)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s %q: not a CIDR such as 10.42.0.0/16", flag, value)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s %s: host bits set, did you mean %s?", flag, value, p.Masked())
	}
	return p, nil
}

func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a
}
