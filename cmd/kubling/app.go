package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent/tools"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/logging"
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
		Commands:             commands(),
	}
}

// usageError makes a bad flag one line and a non-zero exit, not a help page.
func usageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (see --help)", err)
}

// env is the environment variable of a flag: KUBLING_ + upper snake case.
func env(flag string) []string {
	b := []byte(config.EnvPrefix + flag)
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
