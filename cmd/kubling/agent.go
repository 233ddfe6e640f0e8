package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/config"
)

func agentCommand() *cli.Command {
	c := &config.Agent{}
	var nodeLabels, nodeTaints, kubeletArgs, proxyArgs cli.StringSlice
	flags := []cli.Flag{
		&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Usage: "URL of a kubling server, https://<host>:6443", EnvVars: []string{"KUBLING_URL"}, Destination: &c.Server},
		&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "join token (the server's <data-dir>/server/token, or one from `kubling token create`)", EnvVars: []string{"KUBLING_TOKEN"}, Destination: &c.Token},
		&cli.StringFlag{Name: "token-file", Usage: "file holding the join token", EnvVars: []string{"KUBLING_TOKEN_FILE"}, Destination: &c.TokenFile},
		&cli.StringFlag{Name: "data-dir", Aliases: []string{"d"}, Usage: "folder for the node's state and credentials", Value: config.DefaultDataDir, EnvVars: env("data-dir"), Destination: &c.DataDir},
		&cli.StringFlag{Name: "node-name", Usage: "name of this node (default: the lowercase hostname)", EnvVars: env("node-name"), Destination: &c.NodeName},
		&cli.StringFlag{Name: "node-ip", Usage: "IP the node advertises (default: the address of the default route's interface)", EnvVars: env("node-ip"), Destination: &c.NodeIP},
		&cli.StringSliceFlag{Name: "node-label", Usage: "label for this node, key=value", EnvVars: env("node-label"), Destination: &nodeLabels},
		&cli.StringSliceFlag{Name: "node-taint", Usage: "taint for this node, key=value:Effect", EnvVars: env("node-taint"), Destination: &nodeTaints},
		&cli.StringSliceFlag{Name: "kubelet-arg", Usage: "extra or overriding kubelet flag, key=value", EnvVars: env("kubelet-arg"), Destination: &kubeletArgs},
		&cli.StringSliceFlag{Name: "kube-proxy-arg", Usage: "extra or overriding kube-proxy flag, key=value", EnvVars: env("kube-proxy-arg"), Destination: &proxyArgs},
		&cli.StringFlag{Name: "private-registry", Usage: "registry mirrors, credentials and TLS for this node (registries.yaml)", Value: "/etc/kubling/registries.yaml", EnvVars: env("private-registry"), Destination: &c.PrivateRegistry},
		&cli.StringFlag{Name: "default-runtime", Usage: "containerd runtime for pods without a RuntimeClass: runc, or one found on the node such as nvidia", EnvVars: env("default-runtime"), Destination: &c.DefaultRuntime},
		&cli.BoolFlag{Name: "debug", Usage: "log upstream components' info lines too", EnvVars: env("debug"), Destination: &c.Debug},
		configFlag(),
	}
	return &cli.Command{
		Name:         "agent",
		Usage:        "join this machine to a cluster as a node",
		Flags:        flags,
		OnUsageError: usageError,
		Action: func(ctx *cli.Context) error {
			if ctx.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (see --help)", ctx.Args().First())
			}
			if err := applyConfigFiles(ctx, flags); err != nil {
				return err
			}
			c.NodeLabels, c.NodeTaints, c.KubeletArgs, c.KubeProxyArgs = nodeLabels.Value(), nodeTaints.Value(), kubeletArgs.Value(), proxyArgs.Value()
			return runDaemon(c, c.Debug, func(ctx context.Context, log klog.Logger) error { return agent.Run(ctx, c, log) })
		},
	}
}
