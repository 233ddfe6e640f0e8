package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/args"
	"github.com/kubling/kubling/pkg/server/token"
)

// Agent is the configuration of `kubling agent`.
type Agent struct {
	DataDir   string
	Server    string
	Token     string
	TokenFile string
	Debug     bool

	NodeName       string
	NodeIP         string
	NodeLabels     []string
	NodeTaints     []string
	KubeletArgs    []string
	KubeProxyArgs  []string
	DefaultRuntime string
	// PrivateRegistry is the registries.yaml file.
	PrivateRegistry string
}

// Normalize fills defaults (node name from the hostname, the token from
// --token-file) and cleans paths.
func (a *Agent) Normalize() error {
	var err error
	if a.DataDir, a.NodeName, err = normalizeNode(a.DataDir, a.NodeName); err != nil {
		return err
	}
	if a.TokenFile != "" {
		if a.Token != "" {
			return errors.New("give --token or --token-file, not both")
		}
		data, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		a.Token = strings.TrimSpace(string(data))
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
	if !ValidNodeName(a.NodeName) {
		return fmt.Errorf("--node-name %q: want a lowercase DNS name (letters, digits, '-', '.')", a.NodeName)
	}
	if err := validRuntime(a.DefaultRuntime); err != nil {
		return err
	}
	if a.NodeIP != "" && net.ParseIP(a.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q: not an IP address", a.NodeIP)
	}
	for _, l := range a.NodeLabels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			return fmt.Errorf("--node-label %q: want key=value", l)
		}
	}
	for flag, list := range map[string][]string{"--kubelet-arg": a.KubeletArgs, "--kube-proxy-arg": a.KubeProxyArgs} {
		for _, o := range list {
			if _, _, err := args.ParseOverride(o); err != nil {
				return fmt.Errorf("%s: %w", flag, err)
			}
		}
	}
	return nil
}
