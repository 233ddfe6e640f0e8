package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/checkconfig"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server/args"
	"github.com/kubling/kubling/scripts"
)

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:         "check-config",
		Usage:        "check this host for what a kubling node needs (OK, WARN or FAIL per line; exit 1 on FAIL)",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cluster-cidr", Usage: "pod network to check against the host's routes", Value: config.DefaultClusterCIDR},
			&cli.StringFlag{Name: "service-cidr", Usage: "service network to check against the host's routes", Value: config.DefaultServiceCIDR},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
			}
			ports := []hostcheck.Port{
				{Host: "", Port: config.DefaultHTTPSPort, What: "apiserver"},
				{Host: "127.0.0.1", Port: args.SchedulerPort, What: "scheduler"},
				{Host: "127.0.0.1", Port: args.ControllerManagerPort, What: "controller-manager"},
				{Host: "127.0.0.1", Port: agent.LoadBalancerPort, What: "agent load balancer"},
			}
			results := checkconfig.Run(checkconfig.Options{Root: "/", ClusterCIDR: c.String("cluster-cidr"), ServiceCIDR: c.String("service-cidr"), Ports: append(ports, agent.Ports()...)})
			if checkconfig.Print(os.Stdout, results) {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}

const bashCompletion = `# bash completion for kubling; load it with: source <(kubling completion bash)
_kubling() {
	local cur="${COMP_WORDS[COMP_CWORD]}"
	local line=("${COMP_WORDS[@]:0:COMP_CWORD}")
	local candidates
	if [[ "$cur" == -* ]]; then
		candidates=$("${line[@]}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		candidates=$("${line[@]}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}
complete -o default -F _kubling kubling
`

const zshCompletion = `#compdef kubling
# zsh completion for kubling; load it with: source <(kubling completion zsh)
_kubling() {
	local cur=${words[CURRENT]}
	local -a line candidates
	line=(${words[1,CURRENT-1]})
	if [[ $cur == -* ]]; then
		candidates=(${(f)"$(${line} $cur --generate-bash-completion 2>/dev/null)"})
	else
		candidates=(${(f)"$(${line} --generate-bash-completion 2>/dev/null)"})
	fi
	compadd -- ${candidates}
}
compdef _kubling kubling
`

// internalScriptCommand prints a script kubling installs beside itself;
// install.sh calls it.
func internalScriptCommand() *cli.Command {
	return &cli.Command{
		Name:   "internal-script",
		Hidden: true,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "killall":
				fmt.Print(scripts.Killall)
			case "uninstall":
				fmt.Print(scripts.UninstallBody)
			default:
				return fmt.Errorf("internal-script: killall or uninstall")
			}
			return nil
		},
	}
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Print(bashCompletion)
			case "zsh":
				fmt.Print(zshCompletion)
			default:
				return fmt.Errorf("give the shell: kubling completion bash|zsh")
			}
			return nil
		},
	}
}
