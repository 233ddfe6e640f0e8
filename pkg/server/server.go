// Package server runs kubling's control plane: PKI, datastore, kube-apiserver,
// kube-scheduler and kube-controller-manager, in one process. Run holds the
// whole start sequence, top to bottom.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/addons"
	"github.com/kubling/kubling/pkg/server/args"
	"github.com/kubling/kubling/pkg/server/kubeconfig"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/server/token"
)

// readyTimeout bounds how long one component may take to become ready.
const readyTimeout = 2 * time.Minute

// Paths under the data dir.
func serverDir(dataDir string) string { return filepath.Join(dataDir, "server") }
func tlsDir(dataDir string) string    { return filepath.Join(serverDir(dataDir), "tls") }
func credDir(dataDir string) string   { return filepath.Join(serverDir(dataDir), "cred") }
func TokenPath(dataDir string) string { return filepath.Join(serverDir(dataDir), "token") }

// ManifestsDir holds the bundled add-ons' files and any manifest a user adds.
func ManifestsDir(dataDir string) string { return filepath.Join(serverDir(dataDir), "manifests") }
func AdminKubeconfig(dataDir string) string {
	return filepath.Join(credDir(dataDir), "admin.kubeconfig")
}

// Run starts the control plane, logs "ready", serves until ctx ends or a
// component fails, then stops everything in reverse order.
func Run(ctx context.Context, c *config.Server, log klog.Logger) (err error) {
	begin := time.Now()

	// 1. Check the flags and the host; nothing is written before this passes.
	p := pki.PKI{Dir: tlsDir(c.DataDir)}
	host := loopbackHost(c.BindAddress)
	cp := args.ControlPlane{
		DataDir:                c.DataDir,
		PKI:                    p,
		BindAddress:            c.BindAddress,
		AdvertiseAddress:       c.AdvertiseAddress,
		HTTPSPort:              c.HTTPSPort,
		ClusterCIDR:            c.ClusterCIDR,
		ServiceCIDR:            c.ServiceCIDR,
		ClusterDomain:          c.ClusterDomain,
		NodeCIDRMaskSize:       config.DefaultNodeCIDRMaskLen,
		SchedulerKubeconfig:    filepath.Join(credDir(c.DataDir), "scheduler.kubeconfig"),
		ControllerKubeconfig:   filepath.Join(credDir(c.DataDir), "controller-manager.kubeconfig"),
		ExtraAPIServer:         c.KubeAPIServerArgs,
		ExtraScheduler:         c.KubeSchedulerArgs,
		ExtraControllerManager: c.KubeControllerManagerArgs,
		// Known once the datastore runs; a stand-in lets the flags be checked now.
		EtcdServers: []string{"unix://datastore.sock"},
	}
	if err := checkComponentFlags(cp); err != nil {
		return err
	}
	store, err := datastore.New(datastore.Config{DataDir: c.DataDir, Endpoint: c.DatastoreEndpoint})
	if err != nil {
		return err
	}
	if err := preflight(c); err != nil {
		return err
	}
	if _, err := token.CheckOwnership(TokenPath(c.DataDir), c.Token); err != nil {
		return err
	}
	lock, err := hostcheck.LockDir(c.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()

	// 2. Certificates and the join token.
	phase := time.Now()
	sans, err := apiserverSANs(c, host)
	if err != nil {
		return err
	}
	p, written, err := pki.Ensure(pki.Options{Dir: p.Dir, APIServerSAN: sans})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	caPEM, err := p.CABundle()
	if err != nil {
		return err
	}
	joinToken, err := token.Ensure(TokenPath(c.DataDir), c.Token, caPEM)
	if err != nil {
		return err
	}
	authnConfig := args.AuthenticationConfigPath(c.DataDir)
	if err := os.MkdirAll(filepath.Dir(authnConfig), 0o700); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(authnConfig, args.AuthenticationConfig(join.CACertsPath), 0o600); err != nil {
		return err
	}
	apiURL := "https://" + net.JoinHostPort(host, strconv.Itoa(c.HTTPSPort))
	kubeconfigs := map[string]string{
		pki.SchedulerClient:  cp.SchedulerKubeconfig,
		pki.ControllerClient: cp.ControllerKubeconfig,
		pki.AdminClient:      AdminKubeconfig(c.DataDir),
	}
	for client, path := range kubeconfigs {
		spec := kubeconfig.Spec{Server: apiURL, CAFile: p.Cert(pki.ServerCA), CertFile: p.Cert(client), KeyFile: p.Key(client)}
		if err := kubeconfig.Write(path, spec, 0o600); err != nil {
			return err
		}
	}
	log.Info("Certificates ready", "dir", p.Dir, "written", len(written), "duration", time.Since(phase).Round(time.Millisecond))

	// 3. Components, in order: datastore, apiserver, scheduler, controllers.
	runner := component.NewRunner(log)
	defer func() {
		if stopErr := runner.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	if err := runner.Start(ctx, readyTimeout, store); err != nil {
		return err
	}
	b := store.Backend()
	cp.EtcdServers, cp.EtcdCAFile, cp.EtcdCertFile, cp.EtcdKeyFile = b.Endpoints, b.CAFile, b.CertFile, b.KeyFile

	apiArgs, schedArgs, cmArgs, err := componentArgs(cp)
	if err != nil {
		return err
	}
	log.V(1).Info("Component arguments", "apiserver", apiArgs, "scheduler", schedArgs, "controller-manager", cmArgs)
	joins := &joinService{pki: p, kubeconfig: AdminKubeconfig(c.DataDir), log: log, cluster: join.Cluster{
		ClusterCIDR: c.ClusterCIDR, ServiceCIDR: c.ServiceCIDR, ClusterDNS: c.ClusterDNS, ClusterDomain: c.ClusterDomain, FlannelBackend: c.FlannelBackend,
	}}
	apiserver := newAPIServer(apiArgs, host, c.HTTPSPort, p, joins.handlers())
	scheduler := newScheduler(schedArgs)
	controllers := newControllerManager(cmArgs)
	if err := runner.Start(ctx, readyTimeout, apiserver, scheduler, controllers); err != nil {
		return err
	}

	// 4. kubling's RBAC and join token, add-ons (CoreDNS), then the node
	// beside the control plane, unless --disable-agent.
	applier, err := addons.NewApplier(AdminKubeconfig(c.DataDir))
	if err != nil {
		return err
	}
	bootstrap := &clusterBootstrap{kubeconfig: AdminKubeconfig(c.DataDir), applier: applier, token: joinToken}
	if !c.DisableAgent {
		bootstrap.node = c.NodeName
		if bootstrap.nodePassword, err = agent.NodePassword(c.DataDir); err != nil {
			return err
		}
	}
	if err := runner.Start(ctx, readyTimeout, bootstrap); err != nil {
		return err
	}
	disabled := map[string]bool{}
	for _, d := range c.Disable {
		disabled[d] = true
	}
	values := manifests.Values{
		ClusterDNS: c.ClusterDNS, ClusterDomain: c.ClusterDomain, ClusterCIDR: c.ClusterCIDR, ServiceCIDR: c.ServiceCIDR,
		SystemDefaultRegistry: c.SystemDefaultRegistry, KubeletDir: agent.KubeletDir(c.DataDir),
	}
	if c.NFSServer != "" && !disabled["nfs-csi"] {
		values.NFS = manifests.NFS{Server: c.NFSServer, Share: c.NFSShare, MountOptions: c.NFSMountOptions, ReclaimPolicy: c.NFSReclaimPolicy}
		if values.NFS.Default, err = nfsDefault(ctx, AdminKubeconfig(c.DataDir), c.NFSDefaultClass, log); err != nil {
			return err
		}
	}
	deploy := addons.New(addons.Config{Dir: ManifestsDir(c.DataDir), Kubeconfig: AdminKubeconfig(c.DataDir), Applier: applier, Values: values, Disabled: disabled, Log: log})
	if err := runner.Start(ctx, readyTimeout, deploy); err != nil {
		return err
	}
	watched := []component.Component{apiserver, scheduler, controllers}
	if !c.DisableAgent {
		node, err := nodeComponents(c, p, apiURL, log)
		if err != nil {
			return err
		}
		if err := runner.Start(ctx, readyTimeout, node...); err != nil {
			return err
		}
		watched = append(watched, node...)
	}

	// 5. Hand the cluster to the user.
	if c.WriteKubeconfig != "" {
		mode, _ := c.KubeconfigMode() // validated with the config
		spec := kubeconfig.Spec{Server: apiURL, CAFile: p.Cert(pki.ServerCA), CertFile: p.Cert(pki.AdminClient), KeyFile: p.Key(pki.AdminClient), Embed: true}
		if err := kubeconfig.Write(c.WriteKubeconfig, spec, os.FileMode(mode)); err != nil {
			return err
		}
		log.Info("Wrote kubeconfig", "path", c.WriteKubeconfig)
	}
	log.Info("Join nodes with: kubling agent --server "+joinURL(c)+" --token "+joinToken.String(), "tokenFile", TokenPath(c.DataDir))
	log.Info("kubling is ready", "kubernetes", apiURL, "duration", time.Since(begin).Round(time.Millisecond))
	// Tell systemd (Type=notify), when it started us.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)

	// 6. Serve until asked to stop, or until a component dies.
	select {
	case <-ctx.Done():
		log.Info("Stopping")
		return nil
	case err := <-component.FirstExit(watched):
		return err
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

// joinURL is the server URL agents join: the advertised address, else the
// host's primary one.
func joinURL(c *config.Server) string {
	host := c.AdvertiseAddress
	if host == "" {
		if ip, err := utilnet.ChooseHostInterface(); err == nil {
			host = ip.String()
		} else {
			host = "127.0.0.1"
		}
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(c.HTTPSPort))
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
	s := pki.SANs{
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + c.ClusterDomain},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, c.APIServerServiceIP()},
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
	if ip := net.ParseIP(c.AdvertiseAddress); ip != nil {
		addIP(ip)
	}
	if ip, err := utilnet.ChooseHostInterface(); err == nil {
		addIP(ip)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return s, fmt.Errorf("list host addresses: %w", err)
	}
	// Host addresses, but not kubling's own bridges (cni0, flannel.1) whose
	// addresses lie in the cluster CIDR: they come and go with the node.
	_, clusterNet, _ := net.ParseCIDR(c.ClusterCIDR)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && (clusterNet == nil || !clusterNet.Contains(n.IP)) {
			addIP(n.IP)
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
