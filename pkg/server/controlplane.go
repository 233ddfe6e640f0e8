package server

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/args"
	"github.com/kubling/kubling/pkg/server/encryption"
	"github.com/kubling/kubling/pkg/server/pki"
)

// The control plane's settings: the components' arguments, certificates,
// the files the apiserver reads, and the addresses it is known by.

// controlPlane gathers what the control-plane components' arguments are
// built from.
func controlPlane(c *config.Server, l datadir.Layout, store datastore.Backend) args.ControlPlane {
	return args.ControlPlane{
		AuthenticationConfig:   l.AuthenticationConfig(),
		EgressSelectorConfig:   l.EgressSelectorConfig(),
		EncryptionConfig:       l.EncryptionConfig(),
		AuditPolicy:            auditPolicy(c, l),
		AuditLog:               l.AuditLog(),
		PKI:                    pki.PKI{Dir: l.ServerTLS()},
		EtcdServers:            store.Endpoints,
		EtcdCAFile:             store.CAFile,
		EtcdCertFile:           store.CertFile,
		EtcdKeyFile:            store.KeyFile,
		BindAddress:            c.BindAddress,
		AdvertiseAddress:       c.AdvertiseAddress,
		HTTPSPort:              c.HTTPSPort,
		ClusterCIDR:            c.ClusterCIDR,
		ServiceCIDR:            c.ServiceCIDR,
		ClusterDomain:          c.ClusterDomain,
		NodeCIDRMaskSize:       config.DefaultNodeCIDRMaskLen,
		SchedulerKubeconfig:    l.ServerKubeconfig(schedulerClient),
		ControllerKubeconfig:   l.ServerKubeconfig(controllerManagerClient),
		ExtraAPIServer:         c.KubeAPIServerArgs,
		ExtraScheduler:         c.KubeSchedulerArgs,
		ExtraControllerManager: c.KubeControllerManagerArgs,
	}
}

func componentArgs(cp args.ControlPlane) (apiserver, scheduler, controllerManager []string, err error) {
	if apiserver, err = args.APIServer(cp); err != nil {
		return nil, nil, nil, err
	}
	if scheduler, err = args.Scheduler(cp); err != nil {
		return nil, nil, nil, err
	}
	if controllerManager, err = args.ControllerManager(cp); err != nil {
		return nil, nil, nil, err
	}
	return apiserver, scheduler, controllerManager, nil
}

// checkComponentFlags refuses flags the upstream components do not know
// (from --kube-*-arg) before anything starts.
func checkComponentFlags(cp args.ControlPlane) error {
	apiserver, scheduler, controllerManager, err := componentArgs(cp)
	if err != nil {
		return err
	}
	for _, err := range []error{checkAPIServerFlags(apiserver), checkSchedulerFlags(scheduler), checkControllerManagerFlags(controllerManager)} {
		if err != nil {
			return err
		}
	}
	return nil
}

// ensurePKI creates (first start) or checks and renews (later starts) the
// cluster's certificates, and writes the control plane's kubeconfigs and
// the apiserver's configuration files.
func ensurePKI(c *config.Server, l datadir.Layout, sans pki.SANs, apiURL string, etcd bool) (pki.PKI, []string, error) {
	p, written, err := pki.Ensure(pki.Options{Dir: l.ServerTLS(), APIServerSAN: sans, Etcd: etcd})
	if err != nil {
		return p, nil, fmt.Errorf("certificates: %w", err)
	}
	if err := writeAPIServerFiles(c, l); err != nil {
		return p, nil, err
	}
	if err := encryption.Ensure(l.EncryptionConfig()); err != nil {
		return p, nil, err
	}
	certs := map[string]string{adminClient: pki.AdminClient, schedulerClient: pki.SchedulerClient, controllerManagerClient: pki.ControllerClient}
	for client, cert := range certs {
		spec := kubeconfig.Spec{Server: apiURL, CAFile: p.Cert(pki.ServerCA), CertFile: p.Cert(cert), KeyFile: p.Key(cert)}
		if err := kubeconfig.Write(l.ServerKubeconfig(client), spec, 0o600); err != nil {
			return p, nil, err
		}
	}
	return p, written, nil
}

// writeAPIServerFiles writes the apiserver's authentication configuration
// and, unless the user brings one or turns auditing off, kubling's audit
// policy; it makes the audit log's folder.
func writeAPIServerFiles(c *config.Server, l datadir.Layout) error {
	authn := l.AuthenticationConfig()
	if err := os.MkdirAll(filepath.Dir(authn), 0o700); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(authn, args.AuthenticationConfig(join.CACertsPath), 0o600); err != nil {
		return err
	}
	egress, err := args.EgressSelectorConfig(l.EgressSocket())
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(l.EgressSelectorConfig(), egress, 0o600); err != nil {
		return err
	}
	if c.DisableAudit {
		return nil
	}
	if c.AuditPolicyFile == "" {
		if err := fileutil.WriteAtomic(l.AuditPolicy(), args.AuditPolicy(), 0o600); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Dir(l.AuditLog()), 0o700)
}

// auditPolicy is the audit policy the apiserver uses: the user's, kubling's,
// or none (--disable-audit).
func auditPolicy(c *config.Server, l datadir.Layout) string {
	switch {
	case c.DisableAudit:
		return ""
	case c.AuditPolicyFile != "":
		return c.AuditPolicyFile
	}
	return l.AuditPolicy()
}

// apiserverSANs names the apiserver by every address and name a client may
// use: loopback, the host's addresses and name, the in-cluster service names
// and IP, and --tls-san.
func apiserverSANs(c *config.Server, host string) (pki.SANs, error) {
	cluster := c.Cluster()
	s := pki.SANs{
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + cluster.ClusterDomain},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, net.IP(cluster.APIServerServiceIP().AsSlice())},
	}
	if h, err := os.Hostname(); err == nil {
		s.DNSNames = append(s.DNSNames, strings.ToLower(h))
	}
	addIP := func(ip net.IP) {
		for _, have := range s.IPs {
			if have.Equal(ip) {
				return
			}
		}
		s.IPs = append(s.IPs, ip)
	}
	addIP(net.ParseIP(host))
	addIP(net.ParseIP(serverAddress(c))) // --node-ip, --advertise-address or the default route's
	if ip := net.ParseIP(c.AdvertiseAddress); ip != nil {
		addIP(ip)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return s, fmt.Errorf("list host addresses: %w", err)
	}
	// Host addresses, but not kubling's own bridges (cni0, flannel.1) whose
	// addresses lie in the cluster CIDR: they come and go with the node.
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !cluster.ClusterCIDR.Contains(ip.Unmap()) {
				addIP(n.IP)
			}
		}
	}
	for _, san := range c.TLSSANs {
		if ip := net.ParseIP(san); ip != nil {
			addIP(ip)
		} else if san != "" {
			s.DNSNames = append(s.DNSNames, strings.ToLower(san))
		}
	}
	return s, nil
}

// loopbackHost is where kubling's own clients reach the apiserver.
func loopbackHost(bind string) string {
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		return bind
	}
	return "127.0.0.1"
}

// joinURL is the server URL agents join, at the server's address.
func joinURL(c *config.Server) string {
	return "https://" + net.JoinHostPort(serverAddress(c), strconv.Itoa(c.HTTPSPort))
}
