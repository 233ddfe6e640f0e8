package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/server/encryption"
)

// secretsEncryptCommand is `kubling secrets-encrypt status`, run on a server.
func secretsEncryptCommand() *cli.Command {
	return &cli.Command{
		Name:  "secrets-encrypt",
		Usage: "show how Secrets are encrypted at rest (run on a server)",
		Subcommands: []*cli.Command{{
			Name:         "status",
			Usage:        "print the provider and keys (never a key's secret)",
			OnUsageError: usageError,
			Flags:        []cli.Flag{serverDataDirFlag()},
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				n := config.Node{DataDir: c.String("data-dir")}
				if err := n.Normalize(); err != nil {
					return err
				}
				st, err := encryption.Read(n.Layout().EncryptionConfig())
				if err != nil {
					return err
				}
				state := "disabled"
				if st.Enabled {
					state = "enabled"
				}
				fmt.Printf("Encryption of Secrets: %s\nProvider: %s\nActive key: %s\nKeys: %s\n", state, st.Provider, st.ActiveKey, strings.Join(st.Keys, ", "))
				return nil
			},
		}},
	}
}
