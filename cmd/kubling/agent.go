package main

import (
	"context"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/config"
)

func agentCommand() *cli.Command {
	c := &config.Agent{}
	node := &nodeFlags{node: &c.Node}
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Usage: "URL of a kubling server, https://<host>:6443", EnvVars: []string{"KUBLING_URL"}, Destination: &c.Server},
		&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "join token (the server's <data-dir>/server/token, or one from \"kubling token create\")", EnvVars: []string{"KUBLING_TOKEN"}, Destination: &c.Token},
		&cli.StringFlag{Name: "token-file", Usage: "file holding the join token", EnvVars: []string{"KUBLING_TOKEN_FILE"}, Destination: &c.TokenFile},
	}, node.flags()...)
	flags = append(flags, configFlag())
	return daemonCommand("agent", "join this machine to a cluster as a node", flags, c, node.collect,
		func(ctx context.Context, log klog.Logger) error { return agent.Run(ctx, c, log) })
}
