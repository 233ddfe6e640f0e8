// Package join is the protocol between `kubling agent` and a server. The
// agent fetches the cluster CA anonymously (GET /cacerts) and checks it
// against the hash in its token before it sends anything secret; then, over
// TLS verified by that CA and authenticated with the token's bootstrap token,
// it posts certificate requests for its node (POST /v1-kubling/join). The
// server answers with signed certificates and the cluster's settings. Private
// keys never leave the agent.
//
// The package is shared by both sides and kept free of heavy imports.
package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kubling/kubling/pkg/token"
)

// Paths the server serves on the apiserver's port.
const (
	CACertsPath    = "/cacerts"
	JoinPath       = "/v1-kubling/join"
	ServerJoinPath = "/v1-kubling/server-join"
	// TunnelPath is where an agent opens its tunnel (a websocket,
	// authenticated with the node's client certificate), through which the
	// apiserver reaches the node when it cannot dial it.
	TunnelPath = "/v1-kubling/connect"
)

// Group is the extra group of every join token's bootstrap identity; RBAC
// lets it (and only it) post to JoinPath.
const Group = "system:bootstrappers:kubling:join"

// ExternalIPAnnotation on a Node holds its --node-external-ip addresses
// (comma-separated): the node writes it, the server's node-address
// controller turns it into the Node's ExternalIP addresses.
const ExternalIPAnnotation = "kubling.io/external-ip"

// MaxClockSkew is how far the agent's clock may differ from the server's:
// beyond it, fresh certificates would look not yet (or no longer) valid.
const MaxClockSkew = 30 * time.Second

// RenewBefore is when a leaf certificate is renewed: once less than this
// is left of it. The server renews its own (pki.RenewBefore); an agent asks
// again, for the keys it has, by the same join request.
const RenewBefore = 90 * 24 * time.Hour

// Credentials an agent asks for, by the base name of its files.
const (
	KubeletClient  = "client-kubelet"
	KubeletServing = "serving-kubelet"
	KubeProxy      = "client-kube-proxy"
	// NetworkPolicy is the node's NetworkPolicy controller (pkg/cni/netpol):
	// one identity for every node, that may read pods, namespaces, policies
	// and nodes and nothing else.
	NetworkPolicy = "client-network-policy"
)

// Credentials lists them in a fixed order. flannel has none of its own: it
// runs as the node (the kubelet's client certificate), so the Node
// authorizer and NodeRestriction confine it to its own Node.
var Credentials = []string{KubeletClient, KubeletServing, KubeProxy, NetworkPolicy}

// RetiredFlannel is flannel's own credential in earlier versions. An agent
// of such a version still asks for it (and cannot start flannel without
// it); the server signs it as the node itself (the kubelet's identity), so
// old agents keep working without the retired shared identity's rights.
const RetiredFlannel = "client-flannel"

// Retired are credentials earlier versions issued, removed from a node's
// TLS folder at start.
var Retired = []string{RetiredFlannel}

// Request is what an agent posts.
type Request struct {
	NodeName string `json:"nodeName"`
	// NodePassword is the agent's per-machine secret: a second machine
	// asking for a node name already in use is refused.
	NodePassword string `json:"nodePassword"`
	// Addresses are the node's IPs, named in its kubelet serving certificate.
	Addresses []string `json:"addresses"`
	// CSRs holds one PEM certificate request per credential. The server
	// decides subjects and names; it uses only the public key.
	CSRs map[string][]byte `json:"csrs"`
}

// Response is the server's answer.
type Response struct {
	// Certificates holds one PEM chain (leaf, CA) per requested credential.
	Certificates map[string][]byte `json:"certificates"`
	// ClientCA verifies the apiserver's client certificate at the kubelet.
	ClientCA []byte  `json:"clientCA"`
	Cluster  Cluster `json:"cluster"`
}

// Cluster is what a node must agree on with the server.
type Cluster struct {
	ClusterCIDR   string `json:"clusterCIDR"`
	ServiceCIDR   string `json:"serviceCIDR"`
	ClusterDNS    string `json:"clusterDNS"`
	ClusterDomain string `json:"clusterDomain"`
	// CNI is the pod network, flannel or calico; empty (servers before it
	// travelled): flannel.
	CNI            string `json:"cni,omitempty"`
	FlannelBackend string `json:"flannelBackend"`
	// DisableNetworkPolicy turns every node's NetworkPolicy controller off.
	DisableNetworkPolicy bool `json:"disableNetworkPolicy,omitempty"`
	// NodePortRange is the apiserver's service-node-port-range ("30000-32767"),
	// which NetworkPolicy rules leave to kube-proxy; empty (servers before
	// it travelled): the default.
	NodePortRange string `json:"nodePortRange,omitempty"`
	// Servers are the apiserver URLs the agent's load balancer spreads over.
	Servers []string `json:"servers"`
}

// ServerRequest is what a joining server (`kubling server --server URL
// --token T`) posts, authenticated with the server token.
type ServerRequest struct {
	NodeName string `json:"nodeName"`
	// EtcdPeerURL is where the new server's etcd member will listen for
	// its peers.
	EtcdPeerURL string `json:"etcdPeerURL"`
	// Cluster are the new server's settings, which must be the cluster's.
	Cluster Cluster `json:"cluster"`
}

// ServerResponse hands a joining server what the cluster's servers share.
type ServerResponse struct {
	// BootstrapData are the cluster's keys (CAs, service-account key,
	// encryption configuration), sealed with the server token's secret
	// (pkg/server/bootstrapdata): only a holder of the token opens them.
	BootstrapData []byte  `json:"bootstrapData"`
	Cluster       Cluster `json:"cluster"`
	// Etcd is the embedded etcd cluster the new server's member was added
	// to, as a learner.
	Etcd EtcdCluster `json:"etcd"`
}

// EtcdCluster describes an etcd cluster to a member joining it.
type EtcdCluster struct {
	// InitialCluster is etcd's --initial-cluster: name=peerURL for every
	// member, the new one included.
	InitialCluster string `json:"initialCluster"`
	// ClientURLs are the existing members' client URLs.
	ClientURLs []string `json:"clientURLs"`
}

// ErrorBody is the JSON of an error answer.
type ErrorBody struct {
	Message string `json:"message"`
}

// WriteError answers a request with status code and msg as an ErrorBody.
func WriteError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(ErrorBody{Message: msg})
}

// permanent marks an error that retrying will not cure (a wrong token, a
// CA mismatch, a clock too far off). Status is the HTTP status, if any.
type permanent struct {
	error
	Status int
}

func (p permanent) Unwrap() error { return p.error }

// IsPermanent says whether err is not worth retrying.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// IsAuthRefusal says whether the server refused the token (401 or 403).
// Right after a server starts, before its informers have caught up, a good
// token may briefly be refused so; callers retry a few times.
func IsAuthRefusal(err error) bool {
	var p permanent
	return errors.As(err, &p) && (p.Status == http.StatusUnauthorized || p.Status == http.StatusForbidden)
}

// ServerURL checks --server: https, a host, an optional port, nothing else.
func ServerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("--server %q: want https://<host>:<port>", raw)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "6443")
	}
	u.Path = ""
	return u, nil
}

// FetchCA gets the cluster CA from server, refuses it unless its sha256 is
// the one the token pins, and refuses a clock that differs from the server's
// by more than MaxClockSkew. now is the local clock (nil: time.Now).
func FetchCA(ctx context.Context, server *url.URL, t token.Token, now func() time.Time) ([]byte, error) {
	if now == nil {
		now = time.Now
	}
	if t.CAHash == "" {
		return nil, permanent{error: errors.New("the token has no CA hash, so the server cannot be verified: use the full token (KL1…::…) from the server's <data-dir>/server/token or `kubling token create`")}
	}
	// Nothing secret is sent on this connection: the CA it returns is
	// trusted only if it matches the token's hash.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // checked against the pinned hash below
		Proxy:           http.ProxyFromEnvironment,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server.String()+CACertsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server %s: %w", server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s%s: %w", server, CACertsPath, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		// The CA is public: a refusal means the server is still starting
		// (its RBAC is not in place yet). Retry.
		return nil, fmt.Errorf("the server %s does not hand out its CA yet (%d): still starting?", server, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(server, CACertsPath, resp.StatusCode, body)
	}
	ca := bytes.TrimSpace(body)
	if got := token.CAHash(ca); got != t.CAHash {
		return nil, permanent{error: fmt.Errorf("the server %s has another cluster CA than the token pins (sha256 %s…, token wants %s…): wrong server or wrong token", server, got[:12], t.CAHash[:12])}
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(ca) {
		return nil, permanent{error: fmt.Errorf("the server %s sent a CA that is not PEM", server)}
	}
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		if skew := now().Sub(date); skew > MaxClockSkew || skew < -MaxClockSkew {
			return nil, permanent{error: fmt.Errorf("this machine's clock is %s off the server's (%s there, %s here; at most %s allowed): sync the clocks, e.g. with NTP",
				skew.Round(time.Second), date.UTC().Format(time.RFC3339), now().UTC().Format(time.RFC3339), MaxClockSkew)}
		}
	}
	return ca, nil
}

// Post sends the join request over TLS verified by ca, authenticated with
// the bootstrap token ("id.secret").
func Post(ctx context.Context, server *url.URL, ca []byte, bootstrapToken string, r Request) (*Response, error) {
	out := &Response{}
	if err := post(ctx, server, JoinPath, ca, bootstrapToken, r, out); err != nil {
		return nil, err
	}
	for _, cred := range Credentials {
		if len(out.Certificates[cred]) == 0 {
			return nil, fmt.Errorf("join answer from %s lacks the %s certificate", server, cred)
		}
	}
	return out, nil
}

// PostServer sends a server's join request (see Post).
func PostServer(ctx context.Context, server *url.URL, ca []byte, bootstrapToken string, r ServerRequest) (*ServerResponse, error) {
	out := &ServerResponse{}
	if err := post(ctx, server, ServerJoinPath, ca, bootstrapToken, r, out); err != nil {
		return nil, err
	}
	if len(out.BootstrapData) == 0 || out.Etcd.InitialCluster == "" || len(out.Etcd.ClientURLs) == 0 {
		return nil, fmt.Errorf("server join answer from %s lacks the cluster keys or its etcd members", server)
	}
	return out, nil
}

// post sends in as JSON to path and decodes the answer into out.
func post(ctx context.Context, server *url.URL, path string, ca []byte, bootstrapToken string, in, out any) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:           http.ProxyFromEnvironment,
	}}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server.String()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bootstrapToken)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server %s: %w", server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the answer to %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(server, path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("answer to %s from %s: %w", path, server, err)
	}
	return nil
}

// statusError turns an HTTP error answer into one line; 4xx answers are
// permanent (the token or the request is wrong), 5xx are retried.
func statusError(server *url.URL, path string, code int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var e ErrorBody
	// Kubernetes' own Status answers carry "message" too.
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	var err error
	switch code {
	case http.StatusUnauthorized:
		err = fmt.Errorf("the server %s rejected the token (401 Unauthorized): it is wrong, expired or deleted", server)
	case http.StatusForbidden:
		err = fmt.Errorf("the server %s refused %s (403 Forbidden): %s", server, path, msg)
	case http.StatusConflict:
		err = fmt.Errorf("the server %s refused to join: %s", server, msg)
	case http.StatusNotFound:
		err = fmt.Errorf("the server %s has no %s (404): is it a kubling server?", server, path)
	default:
		err = fmt.Errorf("the server %s answered %s with %d: %s", server, path, code, msg)
	}
	if code >= 400 && code < 500 && code != http.StatusTooManyRequests {
		return permanent{error: err, Status: code}
	}
	return err
}

// unwrapURLError drops net/http's "Get \"url\":" prefix, which repeats what
// the caller's message already says.
func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}
