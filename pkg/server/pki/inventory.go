package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/kubling/kubling/pkg/join"
)

// CertInfo describes one certificate file for `kubling certificate check`.
type CertInfo struct {
	File     string // path relative to the data dir
	Subject  string // common name
	Issuer   string // issuer's common name
	NotAfter time.Time
	DaysLeft int  // whole days until NotAfter (negative once expired)
	CA       bool // a certificate authority: never renewed automatically
}

// List describes the certificates (*.crt) in dirs, which lie under root,
// sorted by file; a missing dir is skipped. Only the first certificate of a
// file (the leaf of a chain) is described.
func List(root string, dirs []string, now time.Time) ([]CertInfo, error) {
	var out []CertInfo
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.crt"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			certs, err := certutil.ParseCertsPEM(data)
			if err != nil {
				return nil, fmt.Errorf("certificate %s: %w", f, err)
			}
			c := certs[0]
			rel, err := filepath.Rel(root, f)
			if err != nil {
				rel = f
			}
			out = append(out, CertInfo{
				File:     rel,
				Subject:  c.Subject.CommonName,
				Issuer:   c.Issuer.CommonName,
				NotAfter: c.NotAfter,
				DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24),
				CA:       c.IsCA,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// Services name the leaves `kubling certificate rotate --service` renews,
// after K3s's names; CAs are not among them.
var Services = map[string][]string{
	"admin":              {AdminClient},
	"api-server":         {APIServerServing, APIServerKubelet},
	"auth-proxy":         {AuthProxyClient},
	"controller-manager": {ControllerClient},
	"scheduler":          {SchedulerClient},
	"kubelet":            {join.KubeletClient, join.KubeletServing},
	"kube-proxy":         {join.KubeProxy},
	"network-policy":     {join.NetworkPolicy},
	"etcd":               {EtcdServer, EtcdPeer, EtcdClient},
}

// ServiceNames lists Services' keys, sorted.
func ServiceNames() []string {
	var names []string
	for n := range Services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// RemoveLeaves removes the certificates and keys of services (all when
// empty) from dirs, so the next start issues them anew, with new keys: the
// server signs its own (Ensure, EnsureNode), an agent joins again for a new
// key. CAs and the service account key are never touched. It returns the
// files removed, and must not run while kubling does.
func RemoveLeaves(dirs []string, services []string) ([]string, error) {
	if len(services) == 0 {
		services = ServiceNames()
	}
	var names []string
	for _, s := range services {
		leaves, ok := Services[s]
		if !ok {
			return nil, fmt.Errorf("unknown service %q (one of: %s)", s, strings.Join(ServiceNames(), ", "))
		}
		names = append(names, leaves...)
	}
	var removed []string
	for _, dir := range dirs {
		p := PKI{Dir: dir}
		for _, name := range names {
			for _, f := range []string{p.Cert(name), p.Key(name)} {
				err := os.Remove(f)
				switch {
				case err == nil:
					removed = append(removed, f)
				case !errors.Is(err, os.ErrNotExist):
					return removed, fmt.Errorf("rotate %s: %w", name, err)
				}
			}
		}
	}
	return removed, nil
}
