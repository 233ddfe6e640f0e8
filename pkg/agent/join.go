package agent

import (
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/retry"
	"github.com/kubling/kubling/pkg/token"
)

// The agent's side of joining (pkg/join has the protocol, pkg/server the
// server's side): the node's keys stay here, the server signs certificates
// for them, and everything received is kept under the data dir's node TLS
// folder, where a server's own node keeps the same files.

// checkSameCluster refuses a data dir that joined another cluster: its CA
// differs from the one the token pins.
func checkSameCluster(l datadir.Layout, t token.Token) error {
	ca, err := os.ReadFile(l.NodeServerCA())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if token.CAHash([]byte(strings.TrimSpace(string(ca)))) != t.CAHash {
		return fmt.Errorf("data dir %s belongs to another cluster (its CA is not the one the token pins): use that cluster's token, or remove %s to join this one", l.Root, l.AgentDir())
	}
	return nil
}

// joinCluster joins (retrying with back-off while the server is away) and
// writes the node's certificates and the cluster's settings. A node that
// joined before goes on with its stored credentials when the server cannot
// be reached; a refusal (wrong token, wrong CA, clock skew, name taken) ends
// the agent.
func joinCluster(ctx context.Context, clk clock.Clock, server *url.URL, t token.Token, node *Node, log klog.Logger) (*join.Cluster, error) {
	l := node.layout
	req, err := joinRequest(node)
	if err != nil {
		return nil, err
	}
	stored, storedErr := storedCluster(l)
	id, secret := t.Bootstrap()
	var resp *join.Response
	refusals := 0
	err = retry.Until(ctx, clk, retry.Backoff(30*time.Second), func(ctx context.Context) error {
		ca, err := join.FetchCA(ctx, server, t, nil)
		if err == nil {
			resp, err = join.Post(ctx, server, ca, id+"."+secret, req)
			if err == nil {
				return retry.Permanent(writeCredentials(l, ca, resp))
			}
		}
		if join.IsAuthRefusal(err) && storedErr == nil {
			// A token may expire (`kubling token create` makes 24-hour ones)
			// long after its node joined; the node's own certificates go on.
			log.Info("The server refused the token; starting with the credentials of the last join", "server", server.String(), "err", err.Error())
			return nil
		}
		if join.IsAuthRefusal(err) && refusals < 3 {
			refusals++ // the server may have started a moment ago
			return fmt.Errorf("the server refused the token; trying again in case it is still starting: %w", err)
		}
		if join.IsPermanent(err) {
			return retry.Permanent(err)
		}
		if storedErr == nil {
			log.Info("Cannot reach the server; starting with the credentials of the last join", "server", server.String(), "err", err.Error())
			return nil
		}
		return err
	}, func(err error, attempts int) {
		log.Info("Cannot join yet; retrying until the server answers", "server", server.String(), "attempt", attempts, "err", err.Error())
	})
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return stored, nil
	}
	return &resp.Cluster, nil
}

// joinRequest is what a node posts to join: its name, password, address
// and a certificate request for each of its keys (made once, then kept).
func joinRequest(node *Node) (join.Request, error) {
	password, err := NodePassword(node.layout)
	if err != nil {
		return join.Request{}, err
	}
	csrs, err := certificateRequests(node.layout, node.Name())
	if err != nil {
		return join.Request{}, err
	}
	return join.Request{NodeName: node.Name(), NodePassword: password, Addresses: []string{node.IP()}, CSRs: csrs}, nil
}

// certificateRequests makes (once) a private key per node credential and
// returns a certificate request for each; the keys stay on this machine.
func certificateRequests(l datadir.Layout, nodeName string) (map[string][]byte, error) {
	if err := os.MkdirAll(l.NodeTLS(), 0o700); err != nil {
		return nil, err
	}
	csrs := map[string][]byte{}
	for _, cred := range join.Credentials {
		path := l.NodeKey(cred)
		key, err := keyutil.PrivateKeyFromFile(path)
		if errors.Is(err, os.ErrNotExist) {
			keyPEM, genErr := keyutil.MakeEllipticPrivateKeyPEM()
			if genErr != nil {
				return nil, genErr
			}
			if err := fileutil.WriteAtomic(path, keyPEM, 0o600); err != nil {
				return nil, err
			}
			key, err = keyutil.ParsePrivateKeyPEM(keyPEM)
		}
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		csr, err := certutil.MakeCSR(key, &pkix.Name{CommonName: nodeName}, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("certificate request %s: %w", cred, err)
		}
		csrs[cred] = csr
	}
	return csrs, nil
}

// writeCredentials stores what the server sent: the CAs, a certificate per
// credential, and the cluster's settings (last, so a complete cluster.json
// means a complete join).
func writeCredentials(l datadir.Layout, serverCA []byte, resp *join.Response) error {
	files := map[string][]byte{
		l.NodeServerCA(): append(serverCA, '\n'),
		l.NodeClientCA(): resp.ClientCA,
	}
	for _, cred := range join.Credentials {
		files[l.NodeCert(cred)] = resp.Certificates[cred]
	}
	for path, data := range files {
		if err := fileutil.WriteAtomic(path, data, 0o644); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(resp.Cluster, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(l.ClusterFile(), append(data, '\n'), 0o600)
}

// storedCluster returns the settings of the last join, if it completed.
func storedCluster(l datadir.Layout) (*join.Cluster, error) {
	data, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return nil, err
	}
	c := &join.Cluster{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", l.ClusterFile(), err)
	}
	for _, cred := range join.Credentials {
		if _, err := os.Stat(l.NodeCert(cred)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// hostPorts turns server URLs into host:port for the load balancer.
func hostPorts(servers []string) []string {
	var out []string
	for _, s := range servers {
		if u, err := join.ServerURL(s); err == nil {
			out = append(out, u.Host)
		}
	}
	return out
}
