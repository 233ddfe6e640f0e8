package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/server/pki"
)

// Renewal schedule: once shortly after start, then twice a day. A leaf is
// renewed once less than pki.RenewBefore (90 days) of it is left.
const (
	renewFirst    = time.Minute
	renewInterval = 12 * time.Hour
)

// certRenewer renews, while the server runs, the leaf certificates start
// renews: the control plane's (pki.Ensure) and its own node's
// (EnsureNode). Every component reads them from files and reloads them
// itself (docs/server.md, "Certificates"); only the user's kubeconfig
// embeds a copy, so it is written again.
type certRenewer struct {
	c    *config.Server
	l    datadir.Layout
	sans pki.SANs
	etcd bool   // embedded etcd's certificates too
	node string // the server's node name, "" with --disable-agent
	ip   net.IP
	url  string
	log  klog.Logger
}

// component runs the renewal on its schedule.
func (r *certRenewer) component() component.Component {
	return component.NewPeriodic("certificate-renewer", renewFirst, renewInterval,
		func(context.Context) error { return r.renew(time.Now) },
		func(err error) { r.log.Error(err, "Renew certificates; trying again later", "retryIn", renewInterval) })
}

// renew renews what is due and logs what it wrote.
func (r *certRenewer) renew(now func() time.Time) error {
	// Ensure would create a missing CA; while running, that would sign
	// leaves no running client trusts.
	o := pki.Options{Dir: r.l.ServerTLS(), APIServerSAN: r.sans, Etcd: r.etcd, Now: now}
	for _, ca := range o.Authorities() {
		if _, err := os.Stat(pki.PKI{Dir: r.l.ServerTLS()}.Cert(ca)); err != nil {
			return fmt.Errorf("renew certificates: certificate authority: %w", err)
		}
	}
	p, written, err := pki.Ensure(o)
	if err != nil {
		return err
	}
	if r.node != "" {
		nodeWritten, err := p.EnsureNode(r.l.NodeTLS(), r.node, []net.IP{r.ip}, now)
		written = append(written, nodeWritten...)
		if err != nil {
			return err
		}
	}
	if len(written) == 0 {
		return nil
	}
	if slices.Contains(written, pki.AdminClient) {
		if err := writeUserKubeconfig(r.c, p, r.url, r.log); err != nil {
			return err
		}
	}
	r.log.Info("Renewed certificates; the running components reload them from disk, no restart needed", "certificates", written, "dir", p.Dir)
	return nil
}
