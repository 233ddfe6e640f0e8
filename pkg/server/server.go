// Package server runs kubling's control plane: PKI, datastore, kube-apiserver,
// kube-scheduler and kube-controller-manager, in one process, then the
// server's own node through pkg/agent. Run holds the whole start sequence,
// top to bottom.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/addons"
	"github.com/kubling/kubling/pkg/server/apply"
	"github.com/kubling/kubling/pkg/server/args"
	"github.com/kubling/kubling/pkg/server/bootstrapdata"
	"github.com/kubling/kubling/pkg/server/encryption"
	"github.com/kubling/kubling/pkg/server/leader"
	"github.com/kubling/kubling/pkg/server/nodejoin"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/server/serverjoin"
	"github.com/kubling/kubling/pkg/server/snapshotfiles"
	"github.com/kubling/kubling/pkg/token"
)

// readyTimeout bounds how long one component may take to become ready.
const readyTimeout = 2 * time.Minute

// snapshotListInterval is how often the SnapshotFile objects catch up with
// the snapshot folder (a snapshot saved from the command line shows within
// it).
const snapshotListInterval = 30 * time.Second

// Run starts the control plane and, unless --disable-agent, the node beside
// it; logs "ready"; serves until ctx ends or a component fails; then stops
// everything in reverse order.
func Run(ctx context.Context, c *config.Server, log klog.Logger) (err error) {
	begin := time.Now()
	l := c.Layout()
	host := loopbackHost(c.BindAddress)
	apiURL := "https://" + net.JoinHostPort(host, strconv.Itoa(c.HTTPSPort))

	// 1. Check the flags and the host; nothing is written before this passes.
	plan := planDatastore(c, l, log)
	var givenToken *token.Token // --token, parsed by Validate
	if t, ok := c.ParsedToken(); ok {
		givenToken = &t
	}
	if plan.restore != "" {
		// --cluster-reset --cluster-reset-restore-path: restore, and stop.
		return restoreSnapshot(plan.config, plan.restore, givenToken, log)
	}
	store, err := plan.open()
	if err != nil {
		return err
	}
	cp := controlPlane(c, l, store.Backend())
	if err := checkComponentFlags(cp); err != nil {
		return err
	}
	node, err := preflight(c, plan.ports)
	if err != nil {
		return err
	}
	if _, err := token.CheckOwnership(l.Token(), givenToken); err != nil {
		return err
	}
	lock, err := hostcheck.LockDir(c.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()

	runner := component.NewRunner(log)
	defer func() {
		if stopErr := runner.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()

	// 2. A new server takes the cluster's keys: one joining another's
	// cluster (--server) from that server, with its etcd members; one on an
	// external datastore from the datastore, which needs none of kubling's
	// certificates and so starts first. Then certificates, kubeconfigs and
	// the join token.
	phase := time.Now()
	created := newPaths(l)
	if plan.startsFirst {
		if err := runner.Start(ctx, readyTimeout, store); err != nil {
			return err
		}
		if err := adoptBootstrapData(ctx, store.Backend(), l, givenToken, log); err != nil {
			removeAll(created)
			return err
		}
	}
	if plan.joinServer {
		joiner, ok := store.(datastore.MemberJoiner)
		if !ok {
			return fmt.Errorf("--server: the %s datastore cannot join a cluster's etcd members", plan.kind)
		}
		members, err := serverjoin.Ask(ctx, c, l, plan.config.Etcd, log)
		if err != nil {
			removeAll(created)
			return err
		}
		joiner.JoinMembers(members)
	}
	sans, err := apiserverSANs(c, host)
	if err != nil {
		return err
	}
	p, written, err := ensurePKI(c, l, sans, apiURL, plan.etcdMember)
	if err != nil {
		return err
	}
	caPEM, err := p.CABundle()
	if err != nil {
		return err
	}
	joinToken, err := token.Ensure(l.Token(), givenToken, caPEM)
	if err != nil {
		return err
	}
	log.Info("Certificates ready", "dir", p.Dir, "written", len(written), "duration", time.Since(phase).Round(time.Millisecond))

	// 3. The embedded datastore, then the apiserver.
	if !plan.startsFirst {
		if err := runner.Start(ctx, readyTimeout, store); err != nil {
			return err
		}
	}
	if err := storeBootstrapData(ctx, store.Backend(), l, joinToken.Secret, log); err != nil {
		if errors.Is(err, bootstrapdata.ErrOtherCluster) {
			// A first start against another cluster's datastore leaves
			// nothing behind.
			removeAll(created)
		}
		return err
	}
	// The running datastore's backend also names the TLS files, if any.
	apiArgs, schedArgs, cmArgs, err := componentArgs(controlPlane(c, l, store.Backend()))
	if err != nil {
		return err
	}
	log.V(1).Info("Component arguments", "apiserver", apiArgs, "scheduler", schedArgs, "controller-manager", cmArgs)
	cluster := c.Cluster().Join()
	newAdminClient := func() (kubernetes.Interface, error) { return kubeconfig.NewClient(l.AdminKubeconfig()) }
	tokenID, _ := joinToken.Bootstrap()
	joins := &nodejoin.Service{PKI: p, Cluster: c.Cluster(), ServerIPs: sans.IPs, Client: newAdminClient, Log: log}
	handlers := joins.Handlers()
	handlers[join.ServerJoinPath] = &serverjoin.Service{Backend: store.Backend(), Kind: plan.kind, Cluster: c.Cluster(), TokenID: tokenID, Log: log}
	encryption.UseReloadInterval() // a rotated key is picked up in seconds
	apiserver := newAPIServer(apiArgs, host, c.HTTPSPort, p, handlers)
	if err := runner.Start(ctx, readyTimeout, apiserver); err != nil {
		return err
	}
	watched := []component.Component{store, apiserver}

	// 4. What the cluster holds before nodes join (kubling's RBAC, the join
	// token, the server node's name); then what runs once per cluster: the
	// scheduler, the controller-manager, the cleaner that frees a deleted
	// node's name, the add-ons. Where more than one server can share the
	// datastore, those run on the elected leader only.
	applier, err := apply.NewApplier(l.AdminKubeconfig())
	if err != nil {
		return err
	}
	bootstrap, err := newClusterBootstrap(l, applier, joinToken, node)
	if err != nil {
		return err
	}
	if err := runner.Start(ctx, readyTimeout, bootstrap); err != nil {
		return err
	}
	manifestsController, err := newManifestsController(ctx, c, l, applier, log)
	if err != nil {
		return err
	}
	perCluster := []component.Component{newScheduler(schedArgs), newControllerManager(cmArgs),
		&nodejoin.PasswordCleaner{Client: newAdminClient, Log: log}, manifestsController}
	if plan.etcdMember {
		perCluster = append(perCluster, &etcdMembers{backend: store.Backend(), client: newAdminClient, log: log})
	}
	if plan.elected {
		client, err := newAdminClient()
		if err != nil {
			return err
		}
		perCluster = []component.Component{&leader.Elected{Identity: c.NodeName, Client: client,
			Components: perCluster, ReadyTimeout: readyTimeout, Log: log}}
	}
	if err := runner.Start(ctx, readyTimeout, perCluster...); err != nil {
		return err
	}
	watched = append(watched, perCluster...)

	// 5. The server's own node, through the same code as an agent's, with
	// certificates signed here.
	if node != nil {
		parts, err := nodeComponents(node, p, l, agent.Connection{APIServer: apiURL, Cluster: cluster}, log)
		if err != nil {
			return err
		}
		if err := runner.Start(ctx, readyTimeout, parts...); err != nil {
			return err
		}
		watched = append(watched, parts...)
	}
	// Renew leaf certificates while running (shortly after start, then every
	// 12 hours); the components reload the rewritten files themselves.
	renewer := &certRenewer{c: c, l: l, sans: sans, etcd: plan.etcdMember, url: apiURL, log: log}
	if node != nil {
		renewer.node, renewer.ip = node.Name(), net.ParseIP(node.IP())
	}
	if err := runner.Start(ctx, readyTimeout, renewer.component()); err != nil {
		return err
	}
	// Snapshot the embedded datastore on its schedule, and list this
	// server's snapshots in the cluster (SnapshotFile objects).
	if s, ok := store.(datastore.Snapshotter); ok {
		parts := []component.Component{(&snapshotfiles.Sync{Dir: snapshotDir(c.Snapshots.Dir, l), Node: c.NodeName,
			Kubeconfig: l.AdminKubeconfig(), Applier: applier, Log: log}).Component(snapshotListInterval)}
		if !c.Snapshots.Disable {
			schedule, err := snapshotSchedule(c, l, s, log)
			if err != nil {
				return err
			}
			parts = append(parts, schedule)
		}
		if err := runner.Start(ctx, readyTimeout, parts...); err != nil {
			return err
		}
	}

	// 6. Hand the cluster to the user.
	if err := writeUserKubeconfig(c, p, apiURL, log); err != nil {
		return err
	}
	// Never the token itself: logs are kept (journald) and read more widely.
	log.Info("Join nodes with: kubling agent --server "+joinURL(c)+" --token-file <a copy of "+l.Token()+">", "tokenFile", l.Token())
	log.Info("kubling is ready", "kubernetes", apiURL, "duration", time.Since(begin).Round(time.Millisecond))
	// Tell systemd (Type=notify), when it started us.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)

	// 7. Serve until asked to stop, or until a component dies.
	return component.Serve(ctx, log, watched)
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.RemoveAll(p)
	}
}

// controlPlane gathers what the control-plane components' arguments are
// built from.
func controlPlane(c *config.Server, l datadir.Layout, store datastore.Backend) args.ControlPlane {
	return args.ControlPlane{
		AuthenticationConfig:   l.AuthenticationConfig(),
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

// Control-plane clients with a kubeconfig under the server's cred folder.
const (
	adminClient             = "admin"
	schedulerClient         = "scheduler"
	controllerManagerClient = "controller-manager"
)

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

// newManifestsController renders the bundled add-ons with this cluster's
// values and returns the controller that applies the manifests folder.
func newManifestsController(ctx context.Context, c *config.Server, l datadir.Layout, applier *apply.Applier, log klog.Logger) (*addons.Controller, error) {
	disabled := map[string]bool{}
	for _, d := range c.Disable {
		disabled[d] = true
	}
	if c.NFSServer == "" {
		// Without an NFS server the driver would only idle on every node
		// (or sit in ImagePullBackOff where no registry is reachable).
		disabled["nfs-csi"] = true
	}
	values := manifests.Values{
		ClusterDNS: c.ClusterDNS, ClusterDomain: c.ClusterDomain, ClusterCIDR: c.ClusterCIDR, ServiceCIDR: c.ServiceCIDR,
		SystemDefaultRegistry: c.SystemDefaultRegistry, KubeletDir: l.KubeletDir(),
	}
	if !disabled["nfs-csi"] {
		values.NFS = manifests.NFS{Server: c.NFSServer, Share: c.NFSShare, MountOptions: c.NFSMountOptions, ReclaimPolicy: c.NFSReclaimPolicy}
		var err error
		if values.NFS.Default, err = nfsDefault(ctx, l.AdminKubeconfig(), c.NFSDefaultClass, log); err != nil {
			return nil, err
		}
	}
	return addons.New(addons.Config{Dir: l.Manifests(), Kubeconfig: l.AdminKubeconfig(), Applier: applier, Values: values, Disabled: disabled, Log: log}), nil
}

// writeUserKubeconfig writes the admin kubeconfig users get
// (--write-kubeconfig, --write-kubeconfig-mode), certificates embedded.
func writeUserKubeconfig(c *config.Server, p pki.PKI, apiURL string, log klog.Logger) error {
	if c.WriteKubeconfig == "" {
		return nil
	}
	mode, _ := c.KubeconfigMode() // validated with the config
	spec := kubeconfig.Spec{Server: apiURL, CAFile: p.Cert(pki.ServerCA), CertFile: p.Cert(pki.AdminClient), KeyFile: p.Key(pki.AdminClient), Embed: true}
	if err := kubeconfig.Write(c.WriteKubeconfig, spec, os.FileMode(mode)); err != nil {
		return err
	}
	log.Info("Wrote kubeconfig", "path", c.WriteKubeconfig)
	return nil
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

// joinURL is the server URL agents join, at the server's address.
func joinURL(c *config.Server) string {
	return "https://" + net.JoinHostPort(serverAddress(c), strconv.Itoa(c.HTTPSPort))
}

// loopbackHost is where kubling's own clients reach the apiserver.
func loopbackHost(bind string) string {
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		return bind
	}
	return "127.0.0.1"
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
