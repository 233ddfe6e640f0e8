package server

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/agent/containerd"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/hostcheck"
	"github.com/kubling/kubling/pkg/server/args"
)

// preflight checks the host before anything is written, so a refusal leaves
// no trace. Each failure is one line that names what is wrong.
func preflight(c *config.Server) error {
	if err := hostcheck.Root("server"); err != nil {
		return err
	}
	routes, err := readRoutes()
	if err != nil {
		return err
	}
	for _, n := range []struct{ flag, cidr string }{{"--cluster-cidr", c.ClusterCIDR}, {"--service-cidr", c.ServiceCIDR}} {
		p, err := config.ParseCIDR(n.flag, n.cidr)
		if err != nil {
			return err
		}
		if err := config.CheckRouteOverlap(n.flag, p, routes); err != nil {
			return err
		}
	}
	ports := []hostcheck.Port{
		{Host: c.BindAddress, Port: c.HTTPSPort, What: "the apiserver"},
		{Host: "127.0.0.1", Port: args.SchedulerPort, What: "the scheduler"},
		{Host: "127.0.0.1", Port: args.ControllerManagerPort, What: "the controller-manager"},
	}
	if !c.DisableAgent {
		ports = append(ports, agent.Ports()...)
		if err := hostcheck.BrNetfilter(); err != nil {
			return err
		}
		if err := agent.CheckDefaultRuntime(c.DefaultRuntime); err != nil {
			return err
		}
		if _, err := containerd.LoadRegistries(c.PrivateRegistry); err != nil {
			return err
		}
	}
	if err := hostcheck.PortsFree(ports); err != nil {
		return err
	}
	if err := hostcheck.Writable(c.DataDir); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", c.DataDir, err)
	}
	if c.WriteKubeconfig != "" {
		if err := hostcheck.Writable(filepath.Dir(c.WriteKubeconfig)); err != nil {
			return fmt.Errorf("cannot write the kubeconfig %s: %w", c.WriteKubeconfig, err)
		}
	}
	return nil
}

func readRoutes() ([]config.Route, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read host routes: %w", err)
	}
	defer f.Close()
	return config.ParseProcNetRoute(f)
}
