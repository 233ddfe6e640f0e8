package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/server/args"
)

// preflight checks the host before anything is written, so a refusal leaves
// no trace. Each failure is one line that names what is wrong.
func preflight(c *config.Server) error {
	if os.Geteuid() != 0 {
		return errors.New("server must run as root (try sudo)")
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
	ports := []portUse{
		{c.BindAddress, c.HTTPSPort, "the apiserver"},
		{"127.0.0.1", args.SchedulerPort, "the scheduler"},
		{"127.0.0.1", args.ControllerManagerPort, "the controller-manager"},
	}
	if !c.DisableAgent {
		ports = append(ports,
			portUse{"", 10250, "the kubelet"},
			portUse{"127.0.0.1", 10248, "the kubelet's health check"},
			portUse{"127.0.0.1", 10256, "kube-proxy's health check"},
		)
		if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
			return errors.New("the kernel lacks br_netfilter (/proc/sys/net/bridge is missing): load it with `modprobe br_netfilter`")
		}
	}
	for _, p := range ports {
		if err := portFree(p.host, p.port); err != nil {
			return fmt.Errorf("port %d, needed by %s, is not free: %w (is another kubling or Kubernetes running?)", p.port, p.what, err)
		}
	}
	if err := writable(c.DataDir); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", c.DataDir, err)
	}
	if c.WriteKubeconfig != "" {
		if err := writable(filepath.Dir(c.WriteKubeconfig)); err != nil {
			return fmt.Errorf("cannot write the kubeconfig %s: %w", c.WriteKubeconfig, err)
		}
	}
	return nil
}

// portUse is a port kubling needs and who needs it.
type portUse struct {
	host string
	port int
	what string
}

func readRoutes() ([]config.Route, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read host routes: %w", err)
	}
	defer f.Close()
	return config.ParseProcNetRoute(f)
}

func portFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.EADDRINUSE {
			return errors.New("address already in use")
		}
		return err
	}
	return l.Close()
}

// writable checks, without creating anything, that path is (or can be
// created as) a writable directory: its nearest existing ancestor must be a
// directory that accepts writes (root passes permission bits, not a read-only
// mount).
func writable(path string) error {
	p := path
	for {
		info, err := os.Stat(p)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			if err := unix.Access(p, unix.W_OK); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return err
		}
		p = parent
	}
}

// lockDataDir takes an exclusive lock on the data dir for the life of the
// process, so two kublings never share one datastore.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another kubling process", dir)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return f, nil
}
