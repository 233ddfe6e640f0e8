package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/token"
)

// Agent is the configuration of `kubling agent`: where to join, and its node.
type Agent struct {
	Node
	Server    string
	Token     string
	TokenFile string

	token token.Token // parsed by Validate (ParsedToken)
}

// ParsedToken is --token as Validate parsed it.
func (a *Agent) ParsedToken() token.Token { return a.token }

// Normalize fills defaults (node name from the hostname, the token from
// --token-file) and cleans paths.
func (a *Agent) Normalize() error {
	if err := a.Node.Normalize(); err != nil {
		return err
	}
	return fromFile(&a.Token, a.TokenFile, "--token")
}

// fromFile reads flag's value from the file of its -file twin (--token-file,
// --datastore-endpoint-file): a secret then appears in no command line, unit
// file or process listing. Both given, or an empty file, is refused.
func fromFile(value *string, file, flag string) error {
	if file == "" {
		return nil
	}
	if *value != "" {
		return fmt.Errorf("give %s or %s-file, not both", flag, flag)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s-file: %w", flag, err)
	}
	if *value = strings.TrimSpace(string(data)); *value == "" {
		return fmt.Errorf("%s-file %s is empty", flag, file)
	}
	return nil
}

// Validate checks the settings on their own.
func (a *Agent) Validate() error {
	if a.Server == "" {
		return errors.New("--server is required (the URL of a kubling server, such as https://10.0.0.1:6443; env KUBLING_URL)")
	}
	if _, err := join.ServerURL(a.Server); err != nil {
		return err
	}
	if a.Token == "" {
		return errors.New("--token is required (the server's <data-dir>/server/token, or one from `kubling token create`; env KUBLING_TOKEN)")
	}
	t, err := token.Parse(a.Token)
	if err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	if t.CAHash == "" {
		return errors.New("--token: a bare secret cannot verify the server; use the full token (KL1…::…) from the server's <data-dir>/server/token or `kubling token create`")
	}
	a.token = t
	return a.Node.Validate()
}
