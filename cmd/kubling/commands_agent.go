//go:build agentonly

package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// The agent build (bin/kubling-agent, released as kubling-agent-<arch>):
// `kubling agent` and the node's tools, without the control plane, whose
// code would otherwise make up half of every agent's memory
// (docs/benchmarks.md). The server's commands say so in one line.

// notInAgentBuild is the one line a server command answers with here.
func notInAgentBuild(command string) error {
	return fmt.Errorf("`kubling %s` is not in this build: this is kubling's agent build, which runs `kubling agent` only; install the full kubling (install.sh without KUBLING_URL) on a server", command)
}

func serverOnly(name, usage string) *cli.Command {
	return &cli.Command{
		Name:            name,
		Usage:           usage + " (full kubling only)",
		SkipFlagParsing: true,
		Action:          func(*cli.Context) error { return notInAgentBuild(name) },
	}
}

func commands() []*cli.Command {
	return []*cli.Command{
		serverOnly("server", "run the control plane"),
		agentCommand(),
		serverOnly("token", "manage join tokens"),
		serverOnly("secrets-encrypt", "rotate the Secrets encryption key"),
		serverOnly("certificate", "check or rotate certificates"),
		serverOnly("snapshot", "save, list, delete datastore snapshots"),
		checkConfigCommand(),
		completionCommand(),
		internalScriptCommand(),
		toolCommand("crictl", "run crictl against this node's containerd"),
		toolCommand("ctr", "run ctr against this node's containerd (namespace k8s.io)"),
		serverOnly("kubectl", "run kubectl against this cluster"),
	}
}

// runKubectl is kubling invoked as kubectl.
func runKubectl([]string) {
	fmt.Fprintf(os.Stderr, "kubling: %v\n", notInAgentBuild("kubectl"))
	os.Exit(1)
}
