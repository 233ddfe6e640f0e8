//go:build !agentonly

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server/pki"
)

// certificateCommand is `kubling certificate check|rotate`, on a server's or
// an agent's data dir; neither needs a running kubling.
func certificateCommand() *cli.Command {
	return &cli.Command{
		Name:        "certificate",
		Usage:       "list or renew the certificates under the data dir",
		Subcommands: []*cli.Command{certificateCheckCommand(), certificateRotateCommand()},
	}
}

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Aliases: []string{"d"}, Usage: "kubling's data dir (server or agent)", Value: config.DefaultDataDir, EnvVars: env("data-dir")}
}

func dataDirLayout(c *cli.Context) (datadir.Layout, error) {
	n := config.Node{DataDir: c.String("data-dir")}
	if err := n.Normalize(); err != nil {
		return datadir.Layout{}, err
	}
	return n.Layout(), nil
}

// certificateDirs are the folders that hold kubling's certificates.
func certificateDirs(l datadir.Layout) []string {
	return []string{l.ServerTLS(), l.NodeTLS(), l.KubeletPKI()}
}

func certificateCheckCommand() *cli.Command {
	return &cli.Command{
		Name:         "check",
		Usage:        "list every certificate under the data dir with its expiry",
		OnUsageError: usageError,
		Flags:        []cli.Flag{dataDirFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			l, err := dataDirLayout(c)
			if err != nil {
				return err
			}
			list, err := pki.List(l.Root, certificateDirs(l), time.Now())
			if err != nil {
				return err
			}
			if len(list) == 0 {
				return fmt.Errorf("no certificates under %s (is it kubling's data dir? see --data-dir)", l.Root)
			}
			return printCertificates(os.Stdout, list)
		},
	}
}

// printCertificates writes the certificate table: file, subject, issuer,
// expiry, days left (CAs marked, since nothing renews them).
func printCertificates(out io.Writer, list []pki.CertInfo) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FILE\tSUBJECT\tISSUER\tNOT AFTER\tDAYS LEFT")
	for _, i := range list {
		days := strconv.Itoa(i.DaysLeft)
		if i.DaysLeft < 0 {
			days = "<expired>"
		}
		if i.CA {
			days += " (CA)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", i.File, i.Subject, i.Issuer, i.NotAfter.UTC().Format(time.RFC3339), days)
	}
	return w.Flush()
}

func certificateRotateCommand() *cli.Command {
	return &cli.Command{
		Name: "rotate",
		Usage: "renew leaf certificates with new keys at the next start (run it while kubling is stopped; " +
			"CAs are never rotated)",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			dataDirFlag(),
			&cli.StringSliceFlag{Name: "service", Usage: "only these (" + strings.Join(pki.ServiceNames(), ", ") + "); default: all"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			l, err := dataDirLayout(c)
			if err != nil {
				return err
			}
			if _, err := os.Stat(l.Root); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			// A running kubling holds this lock; it would go on with files
			// that are gone.
			lock, err := hostcheck.LockDir(l.Root)
			if err != nil {
				return fmt.Errorf("%w: stop kubling first (`kubling certificate rotate` works on a stopped server or agent)", err)
			}
			defer lock.Close()
			removed, err := pki.RemoveLeaves([]string{l.ServerTLS(), l.NodeTLS()}, c.StringSlice("service"))
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				return fmt.Errorf("no certificates to rotate under %s (is it kubling's data dir? see --data-dir)", l.Root)
			}
			for _, f := range removed {
				fmt.Println("removed", f)
			}
			fmt.Println("certificates rotated: start kubling to issue them anew with new keys (an agent joins again for its own, so its server must be reachable then)")
			return nil
		},
	}
}
