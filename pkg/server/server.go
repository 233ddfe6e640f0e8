// Package server runs kubling's control plane: PKI, datastore, kube-apiserver,
// kube-scheduler and kube-controller-manager, in one process, then the
// server's own node through pkg/agent. Run reads as the start's phases, top
// to bottom; each phase is a method of start, in the same order below it.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/codepages"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/apply"
	"github.com/kubling/kubling/pkg/server/bootstrapdata"
	"github.com/kubling/kubling/pkg/server/encryption"
	"github.com/kubling/kubling/pkg/server/leader"
	"github.com/kubling/kubling/pkg/server/localstorage"
	"github.com/kubling/kubling/pkg/server/nodeaddress"
	"github.com/kubling/kubling/pkg/server/nodejoin"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/server/serverjoin"
	"github.com/kubling/kubling/pkg/server/servicelb"
	"github.com/kubling/kubling/pkg/server/snapshotfiles"
	"github.com/kubling/kubling/pkg/server/tunnel"
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
// everything in reverse order. Each phase is a method of start, below, in
// the order Run calls them.
func Run(ctx context.Context, c *config.Server, log klog.Logger) (err error) {
	begin := time.Now()
	s := newStart(c, log)

	// 1. Check the flags and the host; nothing is written before this passes.
	if s.plan.restore != "" {
		// --cluster-reset --cluster-reset-restore-path: restore, and stop.
		return restoreSnapshot(s.plan.config, s.plan.restore, s.givenToken, log)
	}
	if err := s.check(); err != nil {
		return err
	}
	lock, err := hostcheck.LockDir(c.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	defer func() {
		if stopErr := s.runner.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		if s.runtime != nil {
			if stopErr := s.runtime.stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	// 2. The cluster's keys, certificates, kubeconfigs and the join token.
	if err := s.keys(ctx); err != nil {
		return err
	}
	// 3. The datastore, then the apiserver; beside the apiserver, the node's
	// container runtime (it needs no cluster).
	if err := s.apiServer(ctx); err != nil {
		return err
	}
	// 4. What the cluster holds before nodes join, then what runs once per
	// cluster (clusterControllers).
	if err := s.perCluster(ctx); err != nil {
		return err
	}
	// 5. The server's own node, certificate renewal, snapshots.
	if err := s.nodeAndUpkeep(ctx); err != nil {
		return err
	}

	// 6. Hand the cluster to the user.
	if err := writeUserKubeconfig(c, s.pki, s.apiURL, log); err != nil {
		return err
	}
	// Never the token itself: logs are kept (journald) and read more widely.
	log.Info("Join nodes with: kubling agent --server "+joinURL(c)+" --token-file <a copy of "+s.l.AgentToken()+">", "tokenFile", s.l.AgentToken())
	log.Info("kubling is ready", "kubernetes", s.apiURL, "duration", time.Since(begin).Round(time.Millisecond))
	// Tell systemd (Type=notify), when it started us.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)

	// 7. Serve until asked to stop, or until a component dies; once start-up
	// is over, give back the executable's pages only it used.
	go codepages.ReleaseAfter(ctx, log, codepages.AfterReady)
	return component.Serve(ctx, log, s.watched)
}

// start is one server start: what its phases share.
type start struct {
	c      *config.Server
	l      datadir.Layout
	log    klog.Logger
	plan   datastorePlan
	host   string // where kubling's own clients reach the apiserver
	apiURL string
	// givenToken is --token as Validate parsed it; nil without.
	givenToken *token.Token
	runner     *component.Runner
	// watched are the components whose death ends the server.
	watched []component.Component

	store                 datastore.Datastore // check
	node                  *agent.Node         // check; nil with --disable-agent
	runtime               *runtimeStart       // apiServer; nil with --disable-agent
	pki                   pki.PKI             // keys
	sans                  pki.SANs            // keys
	joinToken             token.Token         // keys
	created               []string            // keys: what a refused first start removes
	schedulerArgs         []string            // apiServer
	controllerManagerArgs []string            // apiServer
	newAdminClient        func() (kubernetes.Interface, error)
	applier               *apply.Applier // perCluster
}

func newStart(c *config.Server, log klog.Logger) *start {
	l := c.Layout()
	s := &start{c: c, l: l, log: log, plan: planDatastore(c, l, log), host: loopbackHost(c.BindAddress), runner: component.NewRunner(log)}
	s.apiURL = "https://" + net.JoinHostPort(s.host, strconv.Itoa(c.HTTPSPort))
	if t, ok := c.ParsedToken(); ok {
		s.givenToken = &t
	}
	s.newAdminClient = func() (kubernetes.Interface, error) { return kubeconfig.NewClient(l.AdminKubeconfig()) }
	return s
}

// check opens the datastore the plan names and checks the components'
// flags, the host and the data dir's token. It writes nothing.
func (s *start) check() (err error) {
	if s.store, err = s.plan.open(); err != nil {
		return err
	}
	if err := checkComponentFlags(controlPlane(s.c, s.l, s.store.Backend())); err != nil {
		return err
	}
	if s.node, err = preflight(s.c, s.plan.ports); err != nil {
		return err
	}
	stored, err := token.CheckOwnership(s.l.Token(), s.givenToken)
	if err == nil && stored != nil && s.givenToken != nil && stored.Secret != s.givenToken.Secret {
		s.log.Info("Warning: --token names a server token since rotated; the data dir's token is used (update --token, or leave it out: the data dir keeps the token)", "tokenFile", s.l.Token())
	}
	return err
}

// keys: a new server takes the cluster's keys — one joining another's
// cluster (--server) from that server, with its etcd members; one on an
// external datastore from the datastore, which needs none of kubling's
// certificates and so starts first. Then certificates, kubeconfigs and the
// join token.
func (s *start) keys(ctx context.Context) error {
	c, l, log := s.c, s.l, s.log
	phase := time.Now()
	created := newPaths(l)
	if s.plan.startsFirst {
		// An external datastore is waited for until kubling is stopped: a
		// site's servers and database boot in no order.
		if err := s.runner.Start(ctx, 0, s.store); err != nil {
			return err
		}
		if err := adoptBootstrapData(ctx, s.store.Backend(), l, s.givenToken, log); err != nil {
			removeAll(created)
			return err
		}
	}
	if s.plan.joinServer {
		joiner, ok := s.store.(datastore.MemberJoiner)
		if !ok {
			return fmt.Errorf("--server: the %s datastore cannot join a cluster's etcd members", s.plan.kind)
		}
		members, err := serverjoin.Ask(ctx, c, l, s.plan.config.Etcd, log)
		if err != nil {
			removeAll(created)
			return err
		}
		joiner.JoinMembers(members)
	}
	if err := s.certificates(phase); err != nil {
		return err
	}
	// A first start against another cluster's datastore leaves nothing
	// behind (apiServer).
	s.created = created
	return nil
}

// certificates makes what the cluster's CAs sign (and the CAs of a new
// cluster), the kubeconfigs and the token file.
func (s *start) certificates(phase time.Time) error {
	c, l := s.c, s.l
	var err error
	if s.sans, err = apiserverSANs(c, s.host); err != nil {
		return err
	}
	p, written, err := ensurePKI(c, l, s.sans, s.apiURL, s.plan.etcdMember)
	if err != nil {
		return err
	}
	s.pki = p
	caPEM, err := p.CABundle()
	if err != nil {
		return err
	}
	if s.joinToken, err = token.Ensure(l.Token(), s.givenToken, caPEM); err != nil {
		return err
	}
	s.log.Info("Certificates ready", "dir", p.Dir, "written", len(written), "duration", time.Since(phase).Round(time.Millisecond))
	return nil
}

// adoptAfterRace is the loser of two first starts on one empty external
// datastore: the other server stored its keys a moment before this one,
// whose new CAs are then not the cluster's. It drops what it made from
// them and takes the stored keys, as a server started a moment later would.
func (s *start) adoptAfterRace(ctx context.Context) error {
	l := s.l
	s.log.Info("Another server stored the cluster keys at the same moment; taking them instead of this server's new ones")
	for _, p := range []string{l.ServerTLS(), filepath.Dir(l.AdminKubeconfig()), l.Token()} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := adoptBootstrapData(ctx, s.store.Backend(), l, s.givenToken, s.log); err != nil {
		return err
	}
	return s.certificates(time.Now())
}

// apiServer starts the embedded datastore (an external one runs already),
// seals the cluster's keys into it, then starts the apiserver with the join
// endpoints.
func (s *start) apiServer(ctx context.Context) error {
	c, l, log := s.c, s.l, s.log
	if !s.plan.startsFirst {
		if err := s.runner.Start(ctx, readyTimeout, s.store); err != nil {
			return err
		}
	}
	keys, err := storeBootstrapData(ctx, s.store.Backend(), l, log)
	if errors.Is(err, errLostRace) && s.plan.startsFirst && s.madeCAs() {
		if err = s.adoptAfterRace(ctx); err == nil {
			keys, err = storeBootstrapData(ctx, s.store.Backend(), l, log)
		}
	}
	if err != nil {
		if errors.Is(err, bootstrapdata.ErrOtherCluster) {
			removeAll(s.created)
		}
		return err
	}
	if err := s.runner.Start(ctx, 0, keys); err != nil {
		return err
	}
	// The token may have changed (rotated on another server while this one
	// was stopped): what follows uses the file's.
	if t, err := token.ReadFile(l.Token()); err != nil {
		return err
	} else if t != nil {
		s.joinToken = *t
	}
	if s.node != nil {
		s.runtime = startRuntime(ctx, s.node, log)
	}
	// The running datastore's backend also names the TLS files, if any.
	apiArgs, schedArgs, cmArgs, err := componentArgs(controlPlane(c, l, s.store.Backend()))
	if err != nil {
		return err
	}
	s.schedulerArgs, s.controllerManagerArgs = schedArgs, cmArgs
	log.V(1).Info("Component arguments", "apiserver", apiArgs, "scheduler", schedArgs, "controller-manager", cmArgs)
	tokenID := &serverTokenID{path: l.Token()}
	joins := &nodejoin.Service{PKI: s.pki, Cluster: c.Cluster(), ServerIPs: s.sans.IPs, Client: s.newAdminClient,
		ServerTokenUser: func() string { return "system:bootstrap:" + tokenID.get() }, AgentTokenFile: l.AgentToken(), Log: log}
	handlers := joins.Handlers()
	handlers[join.ServerJoinPath] = &serverjoin.Service{Backend: s.store.Backend(), Kind: s.plan.kind, Cluster: c.Cluster(), TokenID: tokenID.get, Log: log}
	encryption.UseReloadInterval() // a rotated key is picked up in seconds
	// Agents' tunnels, and the socket through which the apiserver reaches
	// kubelets and pods (through a tunnel where a node has one).
	tunnels := &tunnel.Server{Client: s.newAdminClient, Socket: l.EgressSocket(), Log: log}
	apiserver := newAPIServer(apiArgs, s.host, c.HTTPSPort, s.pki, handlers, tunnels)
	if err := s.runner.Start(ctx, readyTimeout, apiserver, tunnels); err != nil {
		return err
	}
	s.watched = append(s.watched, s.store, apiserver)
	return nil
}

// perCluster applies what the cluster holds before nodes join (kubling's
// RBAC, the join token, the server node's name), then starts what runs once
// per cluster (clusterControllers): where more than one server can share
// the datastore, on the elected leader only.
func (s *start) perCluster(ctx context.Context) error {
	var err error
	if s.applier, err = apply.NewApplier(s.l.AdminKubeconfig()); err != nil {
		return err
	}
	var agentToken *token.Token
	if t, ok := s.c.ParsedAgentToken(); ok {
		agentToken = &t
	}
	bootstrap, err := newClusterBootstrap(s.l, s.applier, s.joinToken, agentToken, s.node, s.log)
	if err != nil {
		return err
	}
	if err := s.runner.Start(ctx, readyTimeout, bootstrap); err != nil {
		return err
	}
	controllers, err := s.clusterControllers(ctx)
	if err != nil {
		return err
	}
	if s.plan.elected {
		client, err := s.newAdminClient()
		if err != nil {
			return err
		}
		controllers = []component.Component{&leader.Elected{Identity: s.c.NodeName, Client: client,
			Components: controllers, ReadyTimeout: readyTimeout, Log: s.log}}
	}
	if err := s.runner.Start(ctx, readyTimeout, controllers...); err != nil {
		return err
	}
	s.watched = append(s.watched, controllers...)
	return nil
}

// clusterControllers are the components that run once per cluster, in
// start order, all with the cluster-admin client (docs/architecture.md,
// "Adding a controller"): a new one is one line here.
func (s *start) clusterControllers(ctx context.Context) ([]component.Component, error) {
	addonsController, err := newManifestsController(ctx, s.c, s.l, s.applier, s.newAdminClient, s.log)
	if err != nil {
		return nil, err
	}
	shared := &clusterInformers{client: s.newAdminClient}
	controllers := []component.Component{
		newScheduler(s.schedulerArgs),
		newControllerManager(s.controllerManagerArgs),
		shared,
		&nodejoin.PasswordCleaner{Client: s.newAdminClient, Informers: shared.Factory, Log: s.log},
		&nodeaddress.Controller{Client: s.newAdminClient, Informers: shared.Factory, Log: s.log},
		addonsController,
	}
	if !s.c.Disabled(servicelb.Name) {
		var etcdPorts []int
		if s.plan.etcdMember {
			etcdPorts = []int{datastore.EtcdClientPort, datastore.EtcdPeerPort}
		}
		controllers = append(controllers, servicelb.New(servicelb.Config{Client: s.newAdminClient, Informers: shared.Factory,
			Reserved: servicelb.ReservedPorts(s.c.HTTPSPort, agent.KubeletPort, etcdPorts...), Log: s.log}))
	}
	if !s.c.Disabled(localstorage.Name) {
		controllers = append(controllers, localstorage.New(localstorage.Config{Client: s.newAdminClient, Informers: shared.Factory,
			Root: s.c.LocalStoragePath(), Log: s.log}))
	}
	if s.plan.etcdMember {
		controllers = append(controllers, &etcdMembers{backend: s.store.Backend(), client: s.newAdminClient, informers: shared.Factory, log: s.log})
	}
	return controllers, nil
}

// nodeAndUpkeep starts the server's own node (through the same code as an
// agent's, with certificates signed here), the certificate renewer and,
// for an embedded datastore, the snapshot schedule and the SnapshotFile
// objects.
func (s *start) nodeAndUpkeep(ctx context.Context) error {
	c, l, log := s.c, s.l, s.log
	if s.node != nil {
		runtime, err := s.runtime.wait()
		if err != nil {
			return err
		}
		parts, err := nodeComponents(s.node, s.pki, l, agent.Connection{APIServer: s.apiURL, Cluster: c.Cluster()}, log)
		if err != nil {
			return err
		}
		if err := s.runner.Start(ctx, readyTimeout, parts...); err != nil {
			return err
		}
		s.watched = append(append(s.watched, runtime...), parts...)
	}
	// Renew leaf certificates while running (shortly after start, then every
	// 12 hours); the components reload the rewritten files themselves.
	renewer := &certRenewer{c: c, l: l, sans: s.sans, etcd: s.plan.etcdMember, url: s.apiURL, log: log}
	if s.node != nil {
		renewer.node, renewer.ip = s.node.Name(), net.ParseIP(s.node.IP())
	}
	if err := s.runner.Start(ctx, readyTimeout, renewer.component()); err != nil {
		return err
	}
	// Snapshot the embedded datastore on its schedule, and list this
	// server's snapshots in the cluster (SnapshotFile objects).
	snapshotter, ok := s.store.(datastore.Snapshotter)
	if !ok {
		return nil
	}
	parts := []component.Component{(&snapshotfiles.Sync{Dir: snapshotDir(c.Snapshots.Dir, l), Node: c.NodeName,
		Kubeconfig: l.AdminKubeconfig(), Applier: s.applier, Log: log}).Component(snapshotListInterval)}
	if !c.Snapshots.Disable {
		schedule, err := snapshotSchedule(c, l, snapshotter, log)
		if err != nil {
			return err
		}
		parts = append(parts, schedule)
	}
	return s.runner.Start(ctx, readyTimeout, parts...)
}

// madeCAs says this start made the data dir's CAs (a first start).
func (s *start) madeCAs() bool {
	return slices.Contains(s.created, s.l.ServerDir()) || slices.Contains(s.created, s.l.ServerTLS())
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.RemoveAll(p)
	}
}

// Control-plane clients with a kubeconfig under the server's cred folder.
const (
	adminClient             = "admin"
	schedulerClient         = "scheduler"
	controllerManagerClient = "controller-manager"
)

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
