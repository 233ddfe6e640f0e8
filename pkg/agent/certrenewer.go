package agent

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/token"
)

// Renewal schedule: once shortly after start, then twice a day.
const (
	renewFirst    = time.Minute
	renewInterval = 12 * time.Hour
)

// certRenewer keeps a joined agent's certificates valid while it runs: once
// one has less than join.RenewBefore left, it posts the join request again
// (the same keys and node password, the token the agent started with) and
// writes what the server signs. The kubelet, kube-proxy and flannel read
// the files and reload them themselves. (A server's own node is renewed by
// the server, which signs it.)
type certRenewer struct {
	node   *Node
	server *url.URL
	token  token.Token
	log    klog.Logger
}

// newCertRenewer returns the renewal as a component on its schedule.
func newCertRenewer(node *Node, server *url.URL, t token.Token, log klog.Logger) component.Component {
	r := &certRenewer{node: node, server: server, token: t, log: log}
	return component.NewPeriodic("certificate-renewer", renewFirst, renewInterval,
		func(ctx context.Context) error { return r.renew(ctx, time.Now()) },
		func(err error) {
			log.Error(err, "Renew node certificates; trying again later (a restart of the agent also renews them)", "retryIn", renewInterval)
		})
}

// renew joins again if a node certificate is due.
func (r *certRenewer) renew(ctx context.Context, now time.Time) error {
	due, notAfter := certificatesDue(r.node, now)
	if !due {
		return nil
	}
	req, err := joinRequest(r.node)
	if err != nil {
		return err
	}
	ca, err := join.FetchCA(ctx, r.server, r.token, nil)
	if err != nil {
		return fmt.Errorf("renew node certificates (expiring %s): %w", notAfter.Format(time.RFC3339), err)
	}
	id, secret := r.token.Bootstrap()
	resp, err := join.Post(ctx, r.server, ca, id+"."+secret, req)
	if join.IsAuthRefusal(err) {
		return fmt.Errorf("renew node certificates (expiring %s): the server refused the agent's token (expired or deleted?): start the agent with a valid --token before then: %w", notAfter.Format(time.RFC3339), err)
	}
	if err != nil {
		return fmt.Errorf("renew node certificates (expiring %s): %w", notAfter.Format(time.RFC3339), err)
	}
	if err := writeCredentials(r.node.layout, ca, resp); err != nil {
		return fmt.Errorf("renew node certificates: %w", err)
	}
	r.log.Info("Renewed node certificates; the kubelet, kube-proxy and flannel reload them from disk, no restart needed", "node", r.node.Name(), "dir", r.node.layout.NodeTLS())
	return nil
}

// certificatesDue says whether any node certificate has less than
// join.RenewBefore left (or is unreadable), and the earliest expiry.
func certificatesDue(node *Node, now time.Time) (bool, time.Time) {
	var earliest time.Time
	for _, cred := range join.Credentials {
		data, err := os.ReadFile(node.layout.NodeCert(cred))
		if err != nil {
			return true, earliest
		}
		certs, err := certutil.ParseCertsPEM(data)
		if err != nil {
			return true, earliest
		}
		if earliest.IsZero() || certs[0].NotAfter.Before(earliest) {
			earliest = certs[0].NotAfter
		}
	}
	return now.Add(join.RenewBefore).After(earliest), earliest
}
