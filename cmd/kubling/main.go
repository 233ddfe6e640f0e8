// Command kubling turns a Linux machine into a Kubernetes node. Invoked as
// kubectl (through a symlink) it is kubectl; otherwise it is the kubling CLI.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/agent/tools"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/kubectl"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "kubectl":
		kubectl.Main(os.Args[1:], config.DefaultKubeconfig)
	case "crictl", "ctr":
		err := tools.Exec(filepath.Base(os.Args[0]), dataDirFromEnv(), agent.ContainerdSocket, os.Args[1:])
		fmt.Fprintf(os.Stderr, "kubling: %v\n", err)
		os.Exit(1)
	}
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "kubling: %v\n", err)
		os.Exit(1)
	}
}
