// Command kubling turns a Linux machine into a Kubernetes node. Invoked as
// kubectl (through a symlink) it is kubectl; otherwise it is the kubling CLI.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/kubectl"
)

func main() {
	if filepath.Base(os.Args[0]) == "kubectl" {
		kubectl.Main(os.Args[1:], config.DefaultKubeconfig)
	}
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "kubling: %v\n", err)
		os.Exit(1)
	}
}
