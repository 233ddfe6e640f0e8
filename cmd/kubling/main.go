// Command kubling turns a Linux machine into a Kubernetes node. Invoked as
// kubectl (through a symlink) it is kubectl; otherwise it is the kubling CLI.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"

	"github.com/kubling/kubling/pkg/agent/tools"
)

// gcPercent is Go's GC target unless GOGC says otherwise: half the default
// 100 keeps the long-running server and agent about 50 MB smaller at idle
// (docs/benchmarks.md), for a little more GC work. containerd and its shims
// (Go too) get the same through the environment they inherit.
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
		_ = os.Setenv("GOGC", strconv.Itoa(gcPercent))
	}
	switch filepath.Base(os.Args[0]) {
	case "kubectl":
		runKubectl(os.Args[1:])
	case "crictl", "ctr":
		err := tools.Exec(filepath.Base(os.Args[0]), layoutFromEnv(), os.Args[1:])
		fmt.Fprintf(os.Stderr, "kubling: %v\n", err)
		os.Exit(1)
	}
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "kubling: %v\n", err)
		os.Exit(1)
	}
}
