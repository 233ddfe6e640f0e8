//go:build !agentonly

package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/kubectl"
)

// commands are the full kubling's: a server, an agent and the tools.
func commands() []*cli.Command {
	return []*cli.Command{
		serverCommand(),
		agentCommand(),
		tokenCommand(),
		secretsEncryptCommand(),
		etcdCommand(),
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
	}
}

// runKubectl is kubling invoked as kubectl.
func runKubectl(args []string) { kubectl.Main(args, config.DefaultKubeconfig) }
