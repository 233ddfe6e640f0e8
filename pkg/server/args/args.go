// Package args builds the command-line arguments of the control-plane
// components kubling runs in-process (apiserver, scheduler,
// controller-manager). It is kept free of heavy imports so it can be
// unit-tested in seconds; the node's components build theirs in pkg/agent
// with the same pkg/componentargs helpers.
package args

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1beta1 "k8s.io/apiserver/pkg/apis/apiserver/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubling/kubling/pkg/componentargs"
	"github.com/kubling/kubling/pkg/server/pki"
)

// ControlPlane is what the control-plane components need to know.
type ControlPlane struct {
	// AuthenticationConfig is the apiserver's AuthenticationConfiguration file.
	AuthenticationConfig string
	// EgressSelectorConfig is the apiserver's EgressSelectorConfiguration
	// file ("": none, every connection direct).
	EgressSelectorConfig string
	// EncryptionConfig encrypts Secrets at rest ("" leaves them plain).
	EncryptionConfig string
	// AuditPolicy and AuditLog turn the audit log on ("" leaves it off).
	AuditPolicy, AuditLog string
	PKI                   pki.PKI
	EtcdServers           []string
	EtcdCAFile            string
	EtcdCertFile          string
	EtcdKeyFile           string
	BindAddress           string
	AdvertiseAddress      string
	HTTPSPort             int
	ClusterCIDR           string
	ServiceCIDR           string
	ClusterDomain         string
	NodeCIDRMaskSize      int

	SchedulerKubeconfig  string
	ControllerKubeconfig string

	// User additions and overrides, "key=value" each.
	ExtraAPIServer, ExtraScheduler, ExtraControllerManager []string
}

// Ports the scheduler and controller-manager serve their health on, loopback only.
const (
	SchedulerPort         = 10259
	ControllerManagerPort = 10257
)

// APIServer returns kube-apiserver's arguments.
func APIServer(c ControlPlane) ([]string, error) {
	p := c.PKI
	issuer := "https://kubernetes.default.svc." + c.ClusterDomain
	a := map[string]string{
		"advertise-address":                  c.AdvertiseAddress,
		"allow-privileged":                   "true",
		"authentication-config":              c.AuthenticationConfig,
		"api-audiences":                      issuer,
		"authorization-mode":                 "Node,RBAC",
		"bind-address":                       c.BindAddress,
		"client-ca-file":                     p.Cert(pki.ClientCA),
		"enable-admission-plugins":           "NodeRestriction",
		"enable-bootstrap-token-auth":        "true",
		"etcd-servers":                       strings.Join(c.EtcdServers, ","),
		"etcd-cafile":                        c.EtcdCAFile,
		"etcd-certfile":                      c.EtcdCertFile,
		"etcd-keyfile":                       c.EtcdKeyFile,
		"kubelet-certificate-authority":      p.Cert(pki.KubeletCA),
		"kubelet-client-certificate":         p.Cert(pki.APIServerKubelet),
		"kubelet-client-key":                 p.Key(pki.APIServerKubelet),
		"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
		"profiling":                          "false",
		"proxy-client-cert-file":             p.Cert(pki.AuthProxyClient),
		"proxy-client-key-file":              p.Key(pki.AuthProxyClient),
		"requestheader-allowed-names":        "system:auth-proxy",
		"requestheader-client-ca-file":       p.Cert(pki.RequestHeaderCA),
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"secure-port":                        strconv.Itoa(c.HTTPSPort),
		"service-account-issuer":             issuer,
		"service-account-key-file":           p.ServiceAccountKeyFile(),
		"service-account-signing-key-file":   p.ServiceAccountKeyFile(),
		"service-cluster-ip-range":           c.ServiceCIDR,
		"service-node-port-range":            "30000-32767",
		"storage-backend":                    "etcd3",
		"tls-cert-file":                      p.Cert(pki.APIServerServing),
		"tls-private-key-file":               p.Key(pki.APIServerServing),
	}
	if c.EncryptionConfig != "" {
		a["encryption-provider-config"] = c.EncryptionConfig
		// A new key (rotation) is picked up without a restart.
		a["encryption-provider-config-automatic-reload"] = "true"
	}
	if c.EgressSelectorConfig != "" {
		a["egress-selector-config-file"] = c.EgressSelectorConfig
	}
	if c.AuditPolicy != "" {
		a["audit-policy-file"] = c.AuditPolicy
		a["audit-log-path"] = c.AuditLog
		// Rotated by size, a bounded number kept: small disks, SD cards.
		a["audit-log-maxsize"] = strconv.Itoa(AuditLogMaxSizeMB)
		a["audit-log-maxbackup"] = strconv.Itoa(AuditLogMaxBackups)
		a["audit-log-compress"] = "true"
	}
	return componentargs.Build(a, c.ExtraAPIServer)
}

// The audit log's rotation: at most this size (MB) per file, this many
// compressed backups kept.
const (
	AuditLogMaxSizeMB  = 50
	AuditLogMaxBackups = 5
)

// AuditPolicy is kubling's default audit policy: who did what to which
// object and when (Metadata) for every request, never a request or response
// body, so no Secret's or token's content is ever written; health probes
// are left out.
func AuditPolicy() []byte {
	return []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version"]
- level: Metadata
`)
}

// AuthenticationConfig lets anonymous requests reach only the path that
// hands out the cluster CA (joining agents check it against their token);
// every other anonymous request is refused as with anonymous-auth=false.
// RBAC still decides what an anonymous request may do there.
func AuthenticationConfig(caCertsPath string) []byte {
	return []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: ` + caCertsPath + "\n")
}

// EgressSelectorConfig is the apiserver's EgressSelectorConfiguration:
// its connections to the cluster — kubelets (logs, exec, port-forward,
// attach), pods and services (proxy, webhooks, aggregated APIs) — go
// through an HTTP CONNECT proxy on the unix socket; the control plane's
// and etcd's stay direct.
func EgressSelectorConfig(socket string) ([]byte, error) {
	return yaml.Marshal(apiserverv1beta1.EgressSelectorConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1beta1.SchemeGroupVersion.String(), Kind: "EgressSelectorConfiguration"},
		EgressSelections: []apiserverv1beta1.EgressSelection{{
			Name: "cluster",
			Connection: apiserverv1beta1.Connection{
				ProxyProtocol: apiserverv1beta1.ProtocolHTTPConnect,
				Transport:     &apiserverv1beta1.Transport{UDS: &apiserverv1beta1.UDSTransport{UDSName: socket}},
			},
		}},
	})
}

// Scheduler returns kube-scheduler's arguments.
func Scheduler(c ControlPlane) ([]string, error) {
	a := map[string]string{
		"authentication-kubeconfig": c.SchedulerKubeconfig,
		"authorization-kubeconfig":  c.SchedulerKubeconfig,
		"bind-address":              "127.0.0.1",
		"kubeconfig":                c.SchedulerKubeconfig,
		"leader-elect":              "false",
		"profiling":                 "false",
		"secure-port":               strconv.Itoa(SchedulerPort),
	}
	return componentargs.Build(a, c.ExtraScheduler)
}

// ControllerManager returns kube-controller-manager's arguments.
func ControllerManager(c ControlPlane) ([]string, error) {
	p := c.PKI
	a := map[string]string{
		"allocate-node-cidrs":       "true",
		"authentication-kubeconfig": c.ControllerKubeconfig,
		"authorization-kubeconfig":  c.ControllerKubeconfig,
		"bind-address":              "127.0.0.1",
		"cluster-cidr":              c.ClusterCIDR,
		// Kubelet client certificates must be trusted by the apiserver (client
		// CA); kubelet serving certificates by the apiserver's kubelet client
		// (server CA).
		"cluster-signing-kube-apiserver-client-cert-file": p.Cert(pki.ClientCA),
		"cluster-signing-kube-apiserver-client-key-file":  p.Key(pki.ClientCA),
		"cluster-signing-kubelet-client-cert-file":        p.Cert(pki.ClientCA),
		"cluster-signing-kubelet-client-key-file":         p.Key(pki.ClientCA),
		"cluster-signing-kubelet-serving-cert-file":       p.Cert(pki.KubeletCA),
		"cluster-signing-kubelet-serving-key-file":        p.Key(pki.KubeletCA),
		"cluster-signing-legacy-unknown-cert-file":        p.Cert(pki.ServerCA),
		"cluster-signing-legacy-unknown-key-file":         p.Key(pki.ServerCA),
		"configure-cloud-routes":                          "false",
		// Token cleaner and bootstrap signer are off upstream by default;
		// join tokens need them.
		"controllers": "*,tokencleaner,bootstrapsigner",
		// Each controller gets its service account's credentials (below)
		// before any starts: about 130 requests through one client. At
		// upstream's 20/s (burst 30) that alone held node IPAM, so the
		// first node's pod CIDR, 5 s after the controller-manager was up
		// (measured on a cold start, 2026-12-06); the apiserver beside it
		// has its own priority and fairness.
		"kube-api-qps":                     "100",
		"kube-api-burst":                   "200",
		"kubeconfig":                       c.ControllerKubeconfig,
		"leader-elect":                     "false",
		"node-cidr-mask-size-ipv4":         strconv.Itoa(c.NodeCIDRMaskSize),
		"profiling":                        "false",
		"root-ca-file":                     p.Cert(pki.ServerCA),
		"secure-port":                      strconv.Itoa(ControllerManagerPort),
		"service-account-private-key-file": p.ServiceAccountKeyFile(),
		"service-cluster-ip-range":         c.ServiceCIDR,
		"use-service-account-credentials":  "true",
	}
	return componentargs.Build(a, c.ExtraControllerManager)
}
