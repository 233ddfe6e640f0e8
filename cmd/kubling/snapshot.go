//go:build !agentonly

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/grpclog"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server"
	"github.com/kubling/kubling/pkg/snapshot"
)

// snapshotCommand is `kubling snapshot save|ls|delete|prune`, on a server's
// data dir. save needs the server running only on embedded etcd; SQLite is
// copied by a connection of its own.
func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:        "snapshot",
		Usage:       "save, list, delete or prune snapshots of the embedded datastore (SQLite or etcd)",
		Subcommands: []*cli.Command{snapshotSaveCommand(), snapshotListCommand(), snapshotDeleteCommand(), snapshotPruneCommand()},
	}
}

func snapshotDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "snapshot-dir", Usage: "folder of snapshots (default: <data-dir>/server/db/snapshots)", EnvVars: env("snapshot-dir")}
}

// snapshotPlace is the data dir (--data-dir) and the snapshot folder:
// --snapshot-dir, absolute, or the data dir's own.
func snapshotPlace(c *cli.Context) (datadir.Layout, string, error) {
	l, err := dataDirLayout(c)
	if err != nil {
		return l, "", err
	}
	dir := c.String("snapshot-dir")
	if dir == "" {
		return l, l.Snapshots(), nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return l, "", fmt.Errorf("--snapshot-dir: %w", err)
	}
	return l, abs, nil
}

// snapshotNode is the node name snapshots are saved under: the host's name,
// as the server's node is named by default.
func snapshotNode() (string, error) {
	n := config.Node{DataDir: config.DefaultDataDir}
	if err := n.Normalize(); err != nil {
		return "", err
	}
	return n.NodeName, nil
}

func snapshotSaveCommand() *cli.Command {
	return &cli.Command{
		Name:         "save",
		Usage:        "save a snapshot of the datastore now",
		OnUsageError: usageError,
		Flags: []cli.Flag{dataDirFlag(), snapshotDirFlag(),
			&cli.StringFlag{Name: "name", Usage: "start of the snapshot's file name", Value: snapshot.OnDemand},
			&cli.BoolFlag{Name: "compress", Aliases: []string{"snapshot-compress"}, Usage: "compress the snapshot (zstd)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := snapshot.CheckName(c.String("name")); err != nil {
				return err
			}
			if err := hostcheck.RequireRoot("snapshot save"); err != nil {
				return err
			}
			l, dir, err := snapshotPlace(c)
			if err != nil {
				return err
			}
			// gRPC's own log would print every failed dial to etcd; the
			// error that matters comes back as one line.
			grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
			store, kind, err := server.OpenSnapshotter(l)
			if err != nil {
				return err
			}
			if kind == datastore.KindSQLite {
				if _, err := os.Stat(l.SQLiteDB()); err != nil {
					return fmt.Errorf("no datastore in %s (is it a server's data dir? see --data-dir)", l.Root)
				}
			}
			node, err := snapshotNode()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			f, err := snapshot.Save(ctx, store, dir, c.String("name"), node, c.Bool("compress"), time.Now())
			if err != nil {
				return err
			}
			fmt.Printf("Saved %s (%s, %d bytes)\n", f.Path, describe(f.Info), f.Size)
			return nil
		},
	}
}

func snapshotListCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Aliases:      []string{"list"},
		Usage:        "list the snapshots in the snapshot folder",
		OnUsageError: usageError,
		Flags:        []cli.Flag{dataDirFlag(), snapshotDirFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			_, dir, err := snapshotPlace(c)
			if err != nil {
				return err
			}
			files, err := snapshot.List(dir)
			if err != nil {
				return err
			}
			return printSnapshots(os.Stdout, files)
		},
	}
}

// printSnapshots writes the snapshot table, oldest first.
func printSnapshots(out io.Writer, files []snapshot.File) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tSIZE\tCREATED")
	for _, f := range files {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", f.Name, describe(f.Info), f.Size, f.Created.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func describe(i datastore.SnapshotInfo) string {
	if i.Compressed {
		return string(i.Kind) + "+zstd"
	}
	return string(i.Kind)
}

func snapshotDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:         "delete",
		Aliases:      []string{"rm"},
		Usage:        "delete snapshots by name (as ls shows them)",
		ArgsUsage:    "NAME...",
		OnUsageError: usageError,
		Flags:        []cli.Flag{dataDirFlag(), snapshotDirFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return errors.New("name the snapshots to delete (kubling snapshot ls lists them)")
			}
			_, dir, err := snapshotPlace(c)
			if err != nil {
				return err
			}
			removed, err := snapshot.Delete(dir, c.Args().Slice())
			for _, p := range removed {
				fmt.Println("Deleted", p)
			}
			return err
		},
	}
}

func snapshotPruneCommand() *cli.Command {
	return &cli.Command{
		Name:         "prune",
		Usage:        "delete all but the newest --snapshot-retention snapshots saved under --name by this node",
		OnUsageError: usageError,
		Flags: []cli.Flag{dataDirFlag(), snapshotDirFlag(),
			&cli.StringFlag{Name: "name", Usage: "the snapshots' name", Value: snapshot.OnDemand},
			&cli.IntFlag{Name: "snapshot-retention", Usage: "how many to keep", Value: config.DefaultSnapshotRetention},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := snapshot.CheckName(c.String("name")); err != nil {
				return err
			}
			_, dir, err := snapshotPlace(c)
			if err != nil {
				return err
			}
			node, err := snapshotNode()
			if err != nil {
				return err
			}
			removed, err := snapshot.Prune(dir, c.String("name"), node, c.Int("snapshot-retention"))
			for _, p := range removed {
				fmt.Println("Deleted", p)
			}
			return err
		},
	}
}
