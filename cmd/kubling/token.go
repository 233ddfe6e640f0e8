//go:build !agentonly

package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/server"
)

// tokenCommand is `kubling token create|list|delete`, run on a server.
func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:        "token",
		Usage:       "manage join tokens (run on a server)",
		Subcommands: []*cli.Command{tokenCreateCommand(), tokenListCommand(), tokenDeleteCommand(), tokenRotateCommand()},
	}
}

// serverDataDirFlag names the server whose tokens are managed.
func serverDataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Aliases: []string{"d"}, Usage: "the server's data dir", Value: config.DefaultDataDir, EnvVars: env("data-dir")}
}

// serverTokens reaches the tokens of the server whose data dir --data-dir names.
func serverTokens(c *cli.Context) (*server.Tokens, error) {
	n := config.Node{DataDir: c.String("data-dir")}
	if err := n.Normalize(); err != nil {
		return nil, err
	}
	return server.NewTokens(n.Layout())
}

func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	return nil
}

func tokenCreateCommand() *cli.Command {
	return &cli.Command{
		Name:         "create",
		Usage:        "create a join token and print it",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			serverDataDirFlag(),
			&cli.DurationFlag{Name: "ttl", Usage: "how long the token is valid (0: forever)", Value: 24 * time.Hour},
			&cli.StringFlag{Name: "description", Usage: "what the token is for"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Duration("ttl") < 0 {
				return fmt.Errorf("--ttl %s: must not be negative", c.Duration("ttl"))
			}
			t, err := serverTokens(c)
			if err != nil {
				return err
			}
			full, err := t.Create(context.Background(), c.Duration("ttl"), c.String("description"))
			if err != nil {
				return err
			}
			fmt.Println(full)
			return nil
		},
	}
}

func tokenListCommand() *cli.Command {
	return &cli.Command{
		Name:         "list",
		Usage:        "list join tokens",
		OnUsageError: usageError,
		Flags:        []cli.Flag{serverDataDirFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			t, err := serverTokens(c)
			if err != nil {
				return err
			}
			list, err := t.List(context.Background())
			if err != nil {
				return err
			}
			return printTokens(list)
		},
	}
}

// printTokens writes the token table: ID, time left, expiry, description.
func printTokens(list []server.TokenInfo) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTTL\tEXPIRES\tDESCRIPTION")
	for _, i := range list {
		ttl, expires := "<forever>", "<never>"
		if !i.Expires.IsZero() {
			ttl = time.Until(i.Expires).Round(time.Second).String()
			if time.Until(i.Expires) <= 0 {
				ttl = "<expired>"
			}
			expires = i.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", i.ID, ttl, expires, i.Description)
	}
	return w.Flush()
}

func tokenDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:         "delete",
		Usage:        "delete join tokens by ID",
		ArgsUsage:    "ID [ID…]",
		OnUsageError: usageError,
		Flags:        []cli.Flag{serverDataDirFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("give the ID of the token to delete (see `kubling token list`)")
			}
			t, err := serverTokens(c)
			if err != nil {
				return err
			}
			for _, arg := range c.Args().Slice() {
				id, err := t.Delete(context.Background(), arg)
				if err != nil {
					return err
				}
				fmt.Printf("token %s deleted\n", id)
			}
			return nil
		},
	}
}

func tokenRotateCommand() *cli.Command {
	return &cli.Command{
		Name:         "rotate",
		Usage:        "give the server token (or with --agent the agent token) a new secret (joined nodes keep working; new joins need the new token)",
		OnUsageError: usageError,
		Flags: []cli.Flag{serverDataDirFlag(),
			&cli.BoolFlag{Name: "agent", Usage: "rotate the agent token (<data-dir>/server/agent-token) instead of the server token"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			t, err := serverTokens(c)
			if err != nil {
				return err
			}
			n := config.Node{DataDir: c.String("data-dir")}
			_ = n.Normalize() // done once already by serverTokens
			if c.Bool("agent") {
				if err := t.RotateAgent(context.Background()); err != nil {
					return err
				}
				fmt.Printf("agent token rotated; new agents need the token in %s (the other servers' copies follow within a minute)\n", n.Layout().AgentToken())
				return nil
			}
			if err := t.Rotate(context.Background()); err != nil {
				return err
			}
			fmt.Printf("server token rotated; new servers need the token in %s\n", n.Layout().Token())
			return nil
		},
	}
}
