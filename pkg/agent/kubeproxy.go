package agent

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/componentargs"
)

const kubeProxyHealthPort = 10256

// kubeProxySettings are what kube-proxy needs to know of its node.
type kubeProxySettings struct {
	NodeName, ClusterCIDR, Kubeconfig string
	// ExtraArgs are --kube-proxy-arg overrides, key=value.
	ExtraArgs []string
}

// kubeProxyArgs are kubling's kube-proxy flags: iptables mode (set, not
// defaulted: upstream's default moves to nftables), conntrack sysctls left
// alone (they cannot be written in containers and the kernel defaults serve).
func kubeProxyArgs(c kubeProxySettings) ([]string, error) {
	return componentargs.Build(map[string]string{
		"proxy-mode":                        "iptables",
		"kubeconfig":                        c.Kubeconfig,
		"hostname-override":                 c.NodeName,
		"cluster-cidr":                      c.ClusterCIDR,
		"healthz-bind-address":              fmt.Sprintf("127.0.0.1:%d", kubeProxyHealthPort),
		"metrics-bind-address":              "127.0.0.1:10249",
		"conntrack-max-per-core":            "0",
		"conntrack-tcp-timeout-established": "0s",
		"conntrack-tcp-timeout-close-wait":  "0s",
	}, c.ExtraArgs)
}

// newKubeProxy runs kube-proxy in-process. Its loops never return on
// cancel, so Stop does not wait: it ends with the process.
func newKubeProxy(c kubeProxySettings) *component.InProcess {
	return component.NewInProcess("kube-proxy",
		func(ctx context.Context) (func(context.Context) error, error) {
			flags, err := kubeProxyArgs(c)
			if err != nil {
				return nil, err
			}
			opts := proxyapp.NewOptions()
			fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
			opts.AddFlags(fs)
			if err := fs.Parse(flags); err != nil {
				return nil, fmt.Errorf("kube-proxy flags: %w", err)
			}
			if err := opts.Complete(fs); err != nil {
				return nil, err
			}
			if err := opts.Validate(); err != nil {
				return nil, err
			}
			return opts.Run, nil
		},
		component.HTTPProbe(fmt.Sprintf("http://127.0.0.1:%d/healthz", kubeProxyHealthPort), nil),
	).StopGrace(0)
}
