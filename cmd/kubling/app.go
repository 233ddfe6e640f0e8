package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/manifests"
	"github.com/kubling/kubling/pkg/agent/tools"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/kubectl"
	"github.com/kubling/kubling/pkg/logging"
	"github.com/kubling/kubling/pkg/server"
	"github.com/kubling/kubling/pkg/version"
)

func newApp() *cli.App {
	cli.VersionPrinter = func(*cli.Context) { fmt.Print(version.String()) }
	return &cli.App{
		Name:                 "kubling",
		Usage:                "one binary that makes any Linux machine a Kubernetes node",
		Version:              version.Version,
		EnableBashCompletion: true,
		OnUsageError:         usageError,
		Commands: []*cli.Command{
			serverCommand(),
			agentCommand(),
			tokenCommand(),
			secretsEncryptCommand(),
			certificateCommand(),
			snapshotCommand(),
			checkConfigCommand(),
			completionCommand(),
			internalScriptCommand(),
			toolCommand("crictl", "run crictl against this node's containerd"),
			toolCommand("ctr", "run ctr against this node's containerd (namespace k8s.io)"),
			{
				Name:            "kubectl",
				Usage:           "run kubectl against this cluster",
				SkipFlagParsing: true,
				Action: func(c *cli.Context) error {
					kubectl.Main(c.Args().Slice(), config.DefaultKubeconfig)
					return nil
				},
			},
		},
	}
}

// usageError makes a bad flag one line and a non-zero exit, not a help page.
func usageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (see --help)", err)
}

// env is the environment variable of a flag: KUBLING_ + upper snake case.
func env(flag string) []string {
	b := []byte("KUBLING_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}

func serverCommand() *cli.Command {
	c := &config.Server{}
	node := &nodeFlags{node: &c.Node}
	var tlsSANs, apiArgs, schedArgs, cmArgs, disable, nfsMountOptions cli.StringSlice
	flags := []cli.Flag{
		&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "cluster secret agents join with (generated on first start when empty)", Destination: &c.Token},
		&cli.StringFlag{Name: "write-kubeconfig", Aliases: []string{"o"}, Usage: "write the admin kubeconfig to this file", Value: config.DefaultKubeconfig, Destination: &c.WriteKubeconfig},
		&cli.StringFlag{Name: "write-kubeconfig-mode", Usage: "file mode of the admin kubeconfig, in octal", Value: config.DefaultKubeconfigMode, Destination: &c.WriteKubeconfigMode},
		&cli.StringSliceFlag{Name: "tls-san", Usage: "extra hostname or IP in the apiserver's serving certificate", Destination: &tlsSANs},
		&cli.StringFlag{Name: "bind-address", Usage: "address the apiserver listens on (default: all)", Destination: &c.BindAddress},
		&cli.StringFlag{Name: "advertise-address", Usage: "address the apiserver advertises to the cluster; also the server's node, etcd and join address when --node-ip is not set (default: the default route's interface address)", Destination: &c.AdvertiseAddress},
		&cli.IntFlag{Name: "https-listen-port", Usage: "apiserver port", Value: config.DefaultHTTPSPort, Destination: &c.HTTPSPort},
		&cli.StringFlag{Name: "cluster-cidr", Usage: "pod network", Value: config.DefaultClusterCIDR, Destination: &c.ClusterCIDR},
		&cli.StringFlag{Name: "service-cidr", Usage: "service network", Value: config.DefaultServiceCIDR, Destination: &c.ServiceCIDR},
		&cli.StringFlag{Name: "cluster-dns", Usage: "cluster DNS service IP (default: the 10th address of --service-cidr)", Destination: &c.ClusterDNS},
		&cli.StringFlag{Name: "cluster-domain", Usage: "cluster DNS domain", Value: config.DefaultClusterDomain, Destination: &c.ClusterDomain},
		&cli.StringFlag{Name: "datastore-endpoint", Usage: "external datastore: postgres://…, mysql://… (through kine) or https://host:2379,… (etcd); default: embedded SQLite", Destination: &c.Datastore.Endpoint},
		&cli.StringFlag{Name: "datastore-cafile", Usage: "CA bundle that signs the external datastore's certificate", Destination: &c.Datastore.CAFile},
		&cli.StringFlag{Name: "datastore-certfile", Usage: "client certificate for the external datastore", Destination: &c.Datastore.CertFile},
		&cli.StringFlag{Name: "datastore-keyfile", Usage: "client key for the external datastore", Destination: &c.Datastore.KeyFile},
		&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Usage: "join the cluster of this server (https://<server>:6443) as another server, on embedded etcd; needs --token", Destination: &c.Datastore.JoinURL},
		&cli.BoolFlag{Name: "cluster-init", Usage: "run embedded etcd instead of SQLite (a SQLite datastore already here moves into it once)", Destination: &c.Datastore.ClusterInit},
		&cli.BoolFlag{Name: "cluster-reset", Usage: "make embedded etcd a one-member cluster on this server's data, after quorum loss; with --cluster-reset-restore-path, restore a snapshot and exit", Destination: &c.Datastore.ClusterReset},
		&cli.StringFlag{Name: "cluster-reset-restore-path", Usage: "snapshot file (SQLite or etcd, from kubling snapshot save) to restore into the data dir, with --cluster-reset", Destination: &c.Datastore.RestorePath},
		&cli.StringFlag{Name: "snapshot-schedule-cron", Usage: "when to snapshot the embedded datastore, in cron form", Value: config.DefaultSnapshotSchedule, Destination: &c.Snapshots.Schedule},
		&cli.IntFlag{Name: "snapshot-retention", Usage: "how many scheduled snapshots to keep", Value: config.DefaultSnapshotRetention, Destination: &c.Snapshots.Retention},
		&cli.StringFlag{Name: "snapshot-dir", Usage: "folder of snapshots (default: <data-dir>/server/db/snapshots)", Destination: &c.Snapshots.Dir},
		&cli.BoolFlag{Name: "snapshot-compress", Usage: "compress scheduled snapshots (zstd)", Destination: &c.Snapshots.Compress},
		&cli.BoolFlag{Name: "disable-snapshots", Usage: "take no scheduled snapshots", Destination: &c.Snapshots.Disable},
		&cli.StringSliceFlag{Name: "disable", Usage: "do not deploy this bundled add-on (" + strings.Join(manifests.Names(), ", ") + ")", Destination: &disable},
		&cli.StringFlag{Name: "system-default-registry", Usage: "registry to pull bundled add-on images from instead of their own (a mirror of registry.k8s.io, say)", Destination: &c.SystemDefaultRegistry},
		&cli.StringFlag{Name: "nfs-server", Usage: "NFS server for the nfs-csi StorageClass (with --nfs-share)", Destination: &c.NFSServer},
		&cli.StringFlag{Name: "nfs-share", Usage: "exported path on --nfs-server that volumes are made in", Destination: &c.NFSShare},
		&cli.StringSliceFlag{Name: "nfs-mount-options", Usage: "mount options of nfs-csi volumes", Value: cli.NewStringSlice("nfsvers=4.1"), Destination: &nfsMountOptions},
		&cli.StringFlag{Name: "nfs-reclaim-policy", Usage: "what happens to an nfs-csi volume's data when its claim goes: Delete or Retain", Value: "Delete", Destination: &c.NFSReclaimPolicy},
		&cli.StringFlag{Name: "nfs-default-class", Usage: "make nfs-csi the default StorageClass: auto (when no other is), true or false", Value: "auto", Destination: &c.NFSDefaultClass},
		&cli.StringFlag{Name: "flannel-backend", Usage: "pod network between nodes: vxlan, host-gw or none", Value: "vxlan", Destination: &c.FlannelBackend},
		&cli.BoolFlag{Name: "disable-agent", Usage: "run only the control plane, no node on this machine", Destination: &c.DisableAgent},
		&cli.StringFlag{Name: "audit-policy-file", Usage: "audit policy to use instead of kubling's (metadata of every request; the log is <data-dir>/server/logs/audit.log)", Destination: &c.AuditPolicyFile},
		&cli.BoolFlag{Name: "disable-audit", Usage: "write no audit log", Destination: &c.DisableAudit},
		&cli.StringSliceFlag{Name: "kube-apiserver-arg", Usage: "extra or overriding kube-apiserver flag, key=value", Destination: &apiArgs},
		&cli.StringSliceFlag{Name: "kube-scheduler-arg", Usage: "extra or overriding kube-scheduler flag, key=value", Destination: &schedArgs},
		&cli.StringSliceFlag{Name: "kube-controller-manager-arg", Usage: "extra or overriding kube-controller-manager flag, key=value", Destination: &cmArgs},
	}
	for _, f := range flags {
		setEnv(f)
	}
	flags = append(append(flags, node.flags()...), configFlag())
	collect := func() {
		node.collect()
		c.TLSSANs, c.KubeAPIServerArgs, c.KubeSchedulerArgs, c.KubeControllerManagerArgs =
			tlsSANs.Value(), apiArgs.Value(), schedArgs.Value(), cmArgs.Value()
		c.Disable, c.NFSMountOptions = disable.Value(), nfsMountOptions.Value()
	}
	return daemonCommand("server", "run the control plane (and, by default, a node)", flags, c, collect,
		func(ctx context.Context, log klog.Logger) error { return server.Run(ctx, c, log) })
}

// daemonCommand is a long-running command (server, agent): it refuses stray
// arguments, fills unset flags from the configuration files, collects the
// list flags into c (collect), checks c and runs until a signal.
func daemonCommand(name, usage string, flags []cli.Flag, c daemonConfig, collect func(), run func(context.Context, klog.Logger) error) *cli.Command {
	return &cli.Command{
		Name:         name,
		Usage:        usage,
		Flags:        flags,
		OnUsageError: usageError,
		Action: func(ctx *cli.Context) error {
			if ctx.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (see --help)", ctx.Args().First())
			}
			if err := applyConfigFiles(ctx, flags); err != nil {
				return err
			}
			collect()
			return runDaemon(c, run)
		},
	}
}

// daemonConfig is a command's configuration: it fills its defaults, checks
// itself, and says whether to log upstream components' info lines.
type daemonConfig interface {
	Normalize() error
	Validate() error
	Debugging() bool
}

// runDaemon checks c, sets up the logger, and runs until SIGTERM or Ctrl-C.
// After the first signal, a second one kills at once (default handling).
func runDaemon(c daemonConfig, run func(context.Context, klog.Logger) error) error {
	if err := c.Normalize(); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	log := logging.Setup(os.Stderr, c.Debugging())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	return run(ctx, log)
}

// setEnv gives a flag its KUBLING_* environment variable.
func setEnv(f cli.Flag) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.EnvVars = env(f.Name)
	case *cli.StringSliceFlag:
		f.EnvVars = env(f.Name)
	case *cli.IntFlag:
		f.EnvVars = env(f.Name)
	case *cli.BoolFlag:
		f.EnvVars = env(f.Name)
	}
}

// toolCommand runs a payload tool (crictl, ctr) with kubling's socket.
func toolCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name:            name,
		Usage:           usage,
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			return tools.Exec(name, layoutFromEnv(), c.Args().Slice())
		},
	}
}

// layoutFromEnv is the data dir the tools use: $KUBLING_DATA_DIR or the default.
func layoutFromEnv() datadir.Layout {
	n := config.Node{DataDir: os.Getenv("KUBLING_DATA_DIR")}
	_ = n.Normalize() // only an unreadable working directory fails; the path is then used as given
	return n.Layout()
}
