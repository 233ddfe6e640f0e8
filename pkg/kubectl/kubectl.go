// Package kubectl runs the real, upstream kubectl inside kubling, pointed at
// kubling's admin kubeconfig unless the user chose another.
package kubectl

import (
	"os"
	"strings"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Client auth plugins, as in upstream kubectl.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

// Main runs kubectl with args (without the program name) and exits.
// defaultKubeconfig is used when neither $KUBECONFIG nor --kubeconfig is set
// and the file is readable.
func Main(args []string, defaultKubeconfig string) {
	if os.Getenv("KUBECONFIG") == "" && !hasKubeconfigFlag(args) {
		if f, err := os.Open(defaultKubeconfig); err == nil {
			f.Close()
			os.Setenv("KUBECONFIG", defaultKubeconfig)
		}
	}
	// kubectl reads os.Args itself (plugins, verbosity).
	os.Args = append([]string{"kubectl"}, args...)
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck // as upstream kubectl
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
	os.Exit(0)
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}
