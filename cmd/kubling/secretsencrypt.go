//go:build !agentonly

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/server/encryption"
)

// secretsEncryptCommand is `kubling secrets-encrypt status|rotate-keys`, run on a server.
func secretsEncryptCommand() *cli.Command {
	return &cli.Command{
		Name:  "secrets-encrypt",
		Usage: "show how Secrets are encrypted at rest, rotate the key (run on a server)",
		Subcommands: []*cli.Command{{
			Name:         "status",
			Usage:        "print the provider and keys (never a key's secret)",
			OnUsageError: usageError,
			Flags:        []cli.Flag{serverDataDirFlag()},
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				path, _, _, err := encryptionPaths(c)
				if err != nil {
					return err
				}
				st, err := encryption.Read(path)
				if err != nil {
					return err
				}
				state := "disabled"
				if st.Enabled {
					state = "enabled"
				}
				fmt.Printf("Encryption of Secrets: %s\nProvider: %s\nActive key: %s\nKeys: %s\nKey rotation: %s\n", state, st.Provider, st.ActiveKey, strings.Join(st.Keys, ", "), st.Rotation)
				return nil
			},
		}, {
			Name:  "rotate-keys",
			Usage: "encrypt every Secret with a new key and drop the old one, on the running server (safe to interrupt and run again)",
			Description: "Adds a new key for decryption, makes it the key that encrypts, rewrites every Secret,\n" +
				"then removes the old key, waiting for the apiserver to load each change. An interrupted\n" +
				"run leaves every Secret readable; running it again finishes the rotation.",
			OnUsageError: usageError,
			Flags:        []cli.Flag{serverDataDirFlag()},
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				path, sealed, kubeconfig, err := encryptionPaths(c)
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return encryption.RotateKeys(ctx, path, sealed, kubeconfig, os.Stdout)
			},
		}},
	}
}

// encryptionPaths are the encryption configuration, the record of its
// sealed copy and the admin kubeconfig of the server whose data dir
// --data-dir names.
func encryptionPaths(c *cli.Context) (path, sealed, kubeconfig string, err error) {
	n := config.Node{DataDir: c.String("data-dir")}
	if err := n.Normalize(); err != nil {
		return "", "", "", err
	}
	l := n.Layout()
	return l.EncryptionConfig(), l.SealedEncryption(), l.AdminKubeconfig(), nil
}
