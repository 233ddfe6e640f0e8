// Package datadir names every file and folder kubling keeps under its data
// dir (--data-dir) and its runtime folder. Nothing else in kubling joins
// paths onto the data dir: to find where something lives, look here.
//
//	<data-dir>/
//	  data/<version>/          the unpacked payload (containerd, runc, CNI plugins, pause image)
//	  server/                  control plane (kubling server only)
//	    tls/                   cluster CAs and control-plane certificates
//	    cred/                  kubeconfigs of the admin, scheduler and controller-manager
//	    db/state.db            the SQLite datastore
//	    db/etcd/               the embedded etcd member's data (--cluster-init)
//	    db/snapshots/          datastore snapshots (kubling snapshot, the schedule)
//	    kine.sock              kine's etcd API, for the apiserver
//	    etc/                   apiserver configuration files (authentication, audit policy)
//	    logs/audit.log         the apiserver's audit log
//	    manifests/             add-on manifests the manifests controller applies
//	    token                  the durable join token
//	    token.previous         tokens rotated out, until the next start reseals the cluster keys
//	  agent/                   the node (server's node and agents alike)
//	    tls/                   node certificates, keys and the cluster CAs
//	    *.kubeconfig           kubeconfigs of the kubelet (flannel uses it too) and kube-proxy
//	    cluster.json           cluster settings from the last join
//	    node-password          this machine's claim on its node name
//	    containerd/            containerd's root and log
//	    kubelet/               the kubelet's root folder
//	    images/                image archives imported before the kubelet starts
//	    cni/                   pod address leases
//	    cni-plugins/           CNI plugins a pod network add-on installs (Calico's)
//	    etc/                   generated configuration (CNI, registries, flannel, NVIDIA)
//	    bin/                   programs the node's components run by name (iptables…), written at start
//
// The runtime folder (sockets, containerd state; gone after a reboot) is
// /run/kubling for the default data dir and /run/kubling-<hash> for any
// other, so two kublings with different data dirs never share it.
package datadir

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// Default is the data dir when --data-dir is not given.
const Default = "/var/lib/kubling"

// DefaultRunDir is the runtime folder of the default data dir.
const DefaultRunDir = "/run/kubling"

// Layout places everything under one data dir.
type Layout struct {
	// Root is the data dir, absolute and clean.
	Root string
}

// New returns the layout of dataDir (made absolute by the caller's config).
func New(dataDir string) Layout { return Layout{Root: filepath.Clean(dataDir)} }

// RunDir is the runtime folder: /run/kubling for the default data dir,
// /run/kubling-<first 12 hex digits of sha256(data dir)> otherwise.
// scripts/kubling-killall.sh computes the same name.
func (l Layout) RunDir() string {
	if l.Root == Default {
		return DefaultRunDir
	}
	sum := sha256.Sum256([]byte(l.Root))
	return DefaultRunDir + "-" + hex.EncodeToString(sum[:])[:12]
}

// PayloadRoot holds one folder per payload version.
func (l Layout) PayloadRoot() string { return filepath.Join(l.Root, "data") }

// Server side.

// ServerDir holds the control plane's state.
func (l Layout) ServerDir() string { return filepath.Join(l.Root, "server") }

// ServerTLS holds the cluster CAs and the control plane's certificates.
func (l Layout) ServerTLS() string { return filepath.Join(l.ServerDir(), "tls") }

// ServerKubeconfig is the kubeconfig of a control-plane client: admin,
// scheduler or controller-manager.
func (l Layout) ServerKubeconfig(client string) string {
	return filepath.Join(l.ServerDir(), "cred", client+".kubeconfig")
}

// AdminKubeconfig is the server's own admin kubeconfig (cluster-admin).
func (l Layout) AdminKubeconfig() string { return l.ServerKubeconfig("admin") }

// Token is the durable join token.
func (l Layout) Token() string { return filepath.Join(l.ServerDir(), "token") }

// AgentToken is the token agents join with (full form): it opens nothing
// but a node's own credentials.
func (l Layout) AgentToken() string { return filepath.Join(l.ServerDir(), "agent-token") }

// PreviousTokens lists the tokens `kubling token rotate` replaced, one a
// line, so that the next start can open the cluster keys sealed with the
// last of them and seal them again with the new one.
func (l Layout) PreviousTokens() string { return l.Token() + ".previous" }

// Manifests holds the bundled add-ons' files and any manifest a user adds.
func (l Layout) Manifests() string { return filepath.Join(l.ServerDir(), "manifests") }

// AuthenticationConfig is the apiserver's AuthenticationConfiguration.
func (l Layout) AuthenticationConfig() string {
	return filepath.Join(l.ServerDir(), "etc", "authentication.yaml")
}

// EgressSelectorConfig is the apiserver's EgressSelectorConfiguration: its
// connections to nodes and pods go through EgressSocket (pkg/server/tunnel).
func (l Layout) EgressSelectorConfig() string {
	return filepath.Join(l.ServerDir(), "etc", "egress-selector.yaml")
}

// EgressSocket is where the apiserver asks (HTTP CONNECT) for connections
// to nodes and pods: direct, or through a node's tunnel.
func (l Layout) EgressSocket() string { return filepath.Join(l.ServerDir(), "egress.sock") }

// AuditPolicy is kubling's default audit policy; AuditLog the apiserver's
// audit log (rotated by the apiserver: audit.log plus dated backups).
func (l Layout) AuditPolicy() string {
	return filepath.Join(l.ServerDir(), "etc", "audit-policy.yaml")
}
func (l Layout) AuditLog() string { return filepath.Join(l.ServerDir(), "logs", "audit.log") }

// EncryptionConfig is the apiserver's EncryptionConfiguration: the key that
// encrypts Secrets at rest, kept with the cluster CAs.
func (l Layout) EncryptionConfig() string {
	return filepath.Join(l.ServerTLS(), "encryption-config.yaml")
}

// SealedEncryption records the content hash of the encryption
// configuration the datastore's sealed copy holds, as this server last saw
// it: rotate-keys waits on it before each next step.
func (l Layout) SealedEncryption() string { return filepath.Join(l.ServerDir(), "encryption-sealed") }

// SQLiteDB is the embedded datastore's database.
func (l Layout) SQLiteDB() string { return filepath.Join(l.ServerDir(), "db", "state.db") }

// EtcdDir is the embedded etcd member's data dir.
func (l Layout) EtcdDir() string { return filepath.Join(l.ServerDir(), "db", "etcd") }

// Snapshots is the default folder of datastore snapshots.
func (l Layout) Snapshots() string { return filepath.Join(l.ServerDir(), "db", "snapshots") }

// KineSocket is where kine serves the etcd API to the apiserver.
func (l Layout) KineSocket() string { return filepath.Join(l.ServerDir(), "kine.sock") }

// Node side.

// AgentDir holds the node's state.
func (l Layout) AgentDir() string { return filepath.Join(l.Root, "agent") }

// NodeTLS holds the node's certificates and keys and the cluster CAs it trusts.
func (l Layout) NodeTLS() string { return filepath.Join(l.AgentDir(), "tls") }

// NodeCert and NodeKey are a node credential's certificate and key (see
// join.Credentials for the names).
func (l Layout) NodeCert(cred string) string { return filepath.Join(l.NodeTLS(), cred+".crt") }
func (l Layout) NodeKey(cred string) string  { return filepath.Join(l.NodeTLS(), cred+".key") }

// NodeServerCA is the CA the node trusts for the apiserver; NodeClientCA the
// one whose client certificates the kubelet accepts.
func (l Layout) NodeServerCA() string { return filepath.Join(l.NodeTLS(), "server-ca.crt") }
func (l Layout) NodeClientCA() string { return filepath.Join(l.NodeTLS(), "client-ca.crt") }

// NodeKubeconfig is the kubeconfig of a node component: kubelet,
// kube-proxy (flannel runs with the kubelet's).
func (l Layout) NodeKubeconfig(component string) string {
	return filepath.Join(l.AgentDir(), component+".kubeconfig")
}

// ClusterFile keeps the cluster settings of the last completed join.
func (l Layout) ClusterFile() string { return filepath.Join(l.AgentDir(), "cluster.json") }

// NodePassword is this machine's claim on its node name.
func (l Layout) NodePassword() string { return filepath.Join(l.AgentDir(), "node-password") }

// KubeletDir is the kubelet's root folder; KubeletPKI its own certificate folder.
func (l Layout) KubeletDir() string { return filepath.Join(l.AgentDir(), "kubelet") }
func (l Layout) KubeletPKI() string { return filepath.Join(l.KubeletDir(), "pki") }

// LocalStorage is the default folder of local-path volumes (the server's
// --default-local-storage-path; every node makes them at the same path).
func (l Layout) LocalStorage() string { return filepath.Join(l.Root, "storage") }

// LocalStorageState is where a node records its local-path volumes.
func (l Layout) LocalStorageState() string { return filepath.Join(l.AgentDir(), "local-storage") }

// AirgapImages holds image archives imported before the kubelet starts.
func (l Layout) AirgapImages() string { return filepath.Join(l.AgentDir(), "images") }

// ContainerdRoot is containerd's persistent root; ContainerdLog its log.
func (l Layout) ContainerdRoot() string { return filepath.Join(l.AgentDir(), "containerd") }
func (l Layout) ContainerdLog() string  { return filepath.Join(l.ContainerdRoot(), "containerd.log") }

// ContainerdState is containerd's runtime state; ContainerdSocket its API.
func (l Layout) ContainerdState() string { return filepath.Join(l.RunDir(), "containerd") }
func (l Layout) ContainerdSocket() string {
	return filepath.Join(l.ContainerdState(), "containerd.sock")
}

// NodeEtc holds the node's generated configuration files.
func (l Layout) NodeEtc() string { return filepath.Join(l.AgentDir(), "etc") }

// CNIConfDir holds the CNI configuration; CNIIPAMDir the pod address
// leases; CNIPluginDir the CNI plugins a pod network add-on installs
// (Calico's), which containerd looks up after the payload's.
func (l Layout) CNIConfDir() string   { return filepath.Join(l.NodeEtc(), "cni", "net.d") }
func (l Layout) CNIIPAMDir() string   { return filepath.Join(l.AgentDir(), "cni") }
func (l Layout) CNIPluginDir() string { return filepath.Join(l.AgentDir(), "cni-plugins") }

// RegistryHosts holds containerd's hosts.toml per registry (registries.yaml).
func (l Layout) RegistryHosts() string { return filepath.Join(l.NodeEtc(), "containerd", "certs.d") }

// FlannelDir holds flannel's net-conf.json.
func (l Layout) FlannelDir() string { return filepath.Join(l.NodeEtc(), "flannel") }

// XDGConfig is the XDG_CONFIG_HOME the NVIDIA runtimes read kubling's
// toolkit configuration from.
func (l Layout) XDGConfig() string { return l.NodeEtc() }

// FallbackResolvConf is written when the host has no resolv.conf pods can use.
func (l Layout) FallbackResolvConf() string { return filepath.Join(l.NodeEtc(), "resolv.conf") }

// NodeBin holds the programs the node's components find on PATH: the
// bundled iptables' commands, written at each start for this payload.
// scripts/kubling-killall.sh uses them too when the host has no iptables.
func (l Layout) NodeBin() string { return filepath.Join(l.AgentDir(), "bin") }

// CrictlConfig names kubling's containerd for crictl.
func (l Layout) CrictlConfig() string { return filepath.Join(l.NodeEtc(), "crictl.yaml") }
