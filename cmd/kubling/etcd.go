//go:build !agentonly

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/grpclog"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server"
)

// etcdCommand is `kubling etcd member ls|remove`, run on a server on
// embedded etcd.
func etcdCommand() *cli.Command {
	return &cli.Command{
		Name:  "etcd",
		Usage: "the embedded etcd's members (run on a server started with --cluster-init or --server)",
		Subcommands: []*cli.Command{{
			Name:  "member",
			Usage: "list or remove the embedded etcd's members",
			Subcommands: []*cli.Command{{
				Name:         "ls",
				Aliases:      []string{"list"},
				Usage:        "list the members: ID, name, state, peer URLs",
				OnUsageError: usageError,
				Flags:        []cli.Flag{serverDataDirFlag()},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return withEtcd(c, "etcd member ls", func(ctx context.Context, b datastore.Backend) error {
						members, err := datastore.Members(ctx, b)
						if err != nil {
							return err
						}
						printMembers(os.Stdout, members, time.Now())
						return nil
					})
				},
			}, {
				Name:  "remove",
				Usage: "remove a member by name, or by ID for a learner that never started",
				Description: "Removing a server's Node (kubectl delete node NAME) removes its member too; this is for\n" +
					"members without a Node, such as a learner left by a server join cut short. A learner that\n" +
					"has not started for " + datastore.StaleLearnerAfter.String() + " is also removed by the next server's join. The last member\n" +
					"is never removed.",
				ArgsUsage:    "NAME|ID",
				OnUsageError: usageError,
				Flags:        []cli.Flag{serverDataDirFlag()},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("give one member's name or ID (see kubling etcd member ls)")
					}
					name := c.Args().First()
					return withEtcd(c, "etcd member remove", func(ctx context.Context, b datastore.Backend) error {
						removed, err := datastore.RemoveMember(ctx, b, name)
						if err != nil {
							return err
						}
						if !removed {
							return fmt.Errorf("no etcd member named %q or of that ID (see kubling etcd member ls)", name)
						}
						fmt.Printf("Removed etcd member %s\n", name)
						return nil
					})
				},
			}},
		}},
	}
}

// withEtcd runs fn against the embedded etcd of the server whose data dir
// --data-dir names.
func withEtcd(c *cli.Context, what string, fn func(context.Context, datastore.Backend) error) error {
	if err := hostcheck.RequireRoot(what); err != nil {
		return err
	}
	n := config.Node{DataDir: c.String("data-dir")}
	if err := n.Normalize(); err != nil {
		return err
	}
	b, err := server.EtcdBackend(n.Layout())
	if err != nil {
		return err
	}
	// gRPC's own log would print every failed dial; the error that
	// matters comes back as one line.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fn(ctx, b); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w (is the server running?)", err)
		}
		return err
	}
	return nil
}

// printMembers writes one line per member.
func printMembers(w io.Writer, members []datastore.Member, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tPEER URLS")
	for _, m := range members {
		name, state := m.Name, "voting"
		switch {
		case m.Name == "" && !m.Since.IsZero():
			name = "-"
			state = fmt.Sprintf("learner, not started for %s (removed by a join after %s)", now.Sub(m.Since).Round(time.Second), datastore.StaleLearnerAfter)
		case m.Name == "":
			name, state = "-", "learner, not started"
		case m.Learner:
			state = "learner, catching up"
		}
		fmt.Fprintf(tw, "%x\t%s\t%s\t%s\n", m.ID, name, state, strings.Join(m.PeerURLs, ","))
	}
	tw.Flush()
}
