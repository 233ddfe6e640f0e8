// Command containerd is containerd and ctr in one executable: ctr when run
// under that name (argv[0], as kubling's `kubling ctr` runs it), containerd
// otherwise. ctr is mostly containerd's own client code: as a program of
// its own it cost the payload 3.3 MB of its 40 MB (zstd, amd64).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/cmd/containerd/command"
	ctr "github.com/containerd/containerd/v2/cmd/ctr/app"
)

func main() {
	name, run := "containerd", command.App().Run
	if filepath.Base(os.Args[0]) == "ctr" {
		name, run = "ctr", ctr.New().Run
	}
	if err := run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
