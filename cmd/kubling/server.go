//go:build !agentonly

package main

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/server"
)

func serverCommand() *cli.Command {
	c := &config.Server{}
	node := &nodeFlags{node: &c.Node}
	var tlsSANs, apiArgs, schedArgs, cmArgs, disable, nfsMountOptions cli.StringSlice
	flags := []cli.Flag{
		&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "server token: joins servers and seals the cluster's keys (generated on first start when empty; <data-dir>/server/token)", Destination: &c.Token},
		&cli.StringFlag{Name: "token-file", Usage: "file holding --token, so the secret is on no command line", Destination: &c.TokenFile},
		&cli.StringFlag{Name: "agent-token", Usage: "the token agents join with, replacing the cluster's (generated on first start when empty; <data-dir>/server/agent-token)", Destination: &c.AgentToken},
		&cli.StringFlag{Name: "agent-token-file", Usage: "file holding --agent-token", Destination: &c.AgentTokenFile},
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
		&cli.StringFlag{Name: "datastore-endpoint-file", Usage: "file holding --datastore-endpoint, so its password is on no command line", Destination: &c.Datastore.EndpointFile},
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
		&cli.StringSliceFlag{Name: "disable", Usage: "do not deploy this bundled add-on or run this controller (" + strings.Join(config.Disableable(), ", ") + ")", Destination: &disable},
		&cli.StringFlag{Name: "system-default-registry", Usage: "registry to pull bundled add-on images from instead of their own (a mirror of registry.k8s.io, say)", Destination: &c.SystemDefaultRegistry},
		&cli.StringFlag{Name: "nfs-server", Usage: "NFS server for the nfs-csi StorageClass (with --nfs-share)", Destination: &c.NFSServer},
		&cli.StringFlag{Name: "nfs-share", Usage: "exported path on --nfs-server that volumes are made in", Destination: &c.NFSShare},
		&cli.StringSliceFlag{Name: "nfs-mount-options", Usage: "mount options of nfs-csi volumes", Value: cli.NewStringSlice("nfsvers=4.1"), Destination: &nfsMountOptions},
		&cli.StringFlag{Name: "nfs-reclaim-policy", Usage: "what happens to an nfs-csi volume's data when its claim goes: Delete or Retain", Value: "Delete", Destination: &c.NFSReclaimPolicy},
		&cli.StringFlag{Name: "nfs-default-class", Usage: "make nfs-csi the default StorageClass: auto (when no other is), true or false", Value: "auto", Destination: &c.NFSDefaultClass},
		&cli.StringFlag{Name: "default-local-storage-path", Usage: "folder local-path volumes are made in, on every node (default: <data-dir>/storage)", Destination: &c.DefaultLocalStoragePath},
		&cli.StringFlag{Name: "cni", Usage: "pod network: flannel (in-process on every node) or calico (Calico's pods in VXLAN mode, images from docker.io or --system-default-registry)", Value: config.CNIFlannel, Destination: &c.CNI},
		&cli.StringFlag{Name: "flannel-backend", Usage: "flannel's transport between nodes: vxlan, host-gw or none (default: vxlan)", Destination: &c.FlannelBackend},
		&cli.BoolFlag{Name: "disable-network-policy", Usage: "enforce no NetworkPolicy on any node (flannel moves packets, policies are ignored)", Destination: &c.DisableNetworkPolicy},
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
