// Package nodejoin is the server's side of the join protocol (pkg/join has
// the protocol itself, pkg/agent the agent's side): it serves the cluster CA
// to anyone and signs node certificates for holders of a join token, after
// checking the node's name, password and addresses.
//
// It imports no apiserver code, so its tests build quickly.
package nodejoin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/pki"
)

// MaxRequestBytes bounds a join request's body.
const MaxRequestBytes = 256 << 10

// Service answers joining agents on the apiserver's port. The apiserver
// authenticates the token (a bootstrap token) and RBAC authorises the path
// before a request gets here.
type Service struct {
	PKI     pki.PKI
	Cluster config.Cluster
	// ServerIPs are this server's own addresses (its serving certificate's
	// IPs): no node may name them in its serving certificate.
	ServerIPs []net.IP
	// Client makes the client the service reads and writes the cluster
	// with; called once, on the first join (the apiserver is up by then).
	Client func() (kubernetes.Interface, error)
	// ServerTokenUser is the user the server token authenticates as now (a
	// rotation changes it while running): an agent joining with it is told
	// to use the agent token.
	ServerTokenUser func() string
	// AgentTokenFile is where the server keeps the agent token.
	AgentTokenFile string
	Log            klog.Logger

	once      sync.Once
	client    kubernetes.Interface
	clientErr error
}

// Handlers are the join endpoints, by path.
func (s *Service) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		join.CACertsPath: http.HandlerFunc(s.serveCA),
		join.JoinPath:    http.HandlerFunc(s.serveJoin),
	}
}

func (s *Service) kube() (kubernetes.Interface, error) {
	s.once.Do(func() { s.client, s.clientErr = s.Client() })
	return s.client, s.clientErr
}

func (s *Service) serveCA(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		join.WriteError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	ca, err := s.PKI.CABundle()
	if err != nil {
		s.Log.Error(err, "Serve CA")
		join.WriteError(w, http.StatusInternalServerError, "cannot read the cluster CA")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(append(ca, '\n'))
}

func (s *Service) serveJoin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		join.WriteError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	// RBAC already limits the path to the join group; check again here so a
	// broadened role binding cannot hand out node credentials by accident.
	user, ok := genericrequest.UserFrom(r.Context())
	if !ok || !slices.Contains(user.GetGroups(), join.Group) {
		join.WriteError(w, http.StatusForbidden, "only join tokens may join nodes")
		return
	}
	req, ips, err := DecodeRequest(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		s.Log.Info("Join refused", "token", user.GetName(), "reason", err.Error())
		join.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, code, err := s.join(r.Context(), req, ips)
	if err != nil {
		s.Log.Info("Join refused", "node", req.NodeName, "token", user.GetName(), "reason", err.Error())
		join.WriteError(w, code, err.Error())
		return
	}
	s.Log.Info("Node joined", "node", req.NodeName, "addresses", req.Addresses, "token", user.GetName())
	if s.ServerTokenUser != nil && user.GetName() == s.ServerTokenUser() {
		s.Log.Info("Warning: this node joined with the server token, which also joins servers and opens the cluster's keys: give agents the agent token instead, then rotate the server token (kubling token rotate)", "node", req.NodeName, "agentTokenFile", s.AgentTokenFile)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// DecodeRequest reads a join request and checks what can be checked
// without the cluster: the node name (as the apiserver would take it), the
// password's length, the addresses' form. It returns the addresses parsed.
func DecodeRequest(body io.Reader) (join.Request, []net.IP, error) {
	var req join.Request
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		return req, nil, fmt.Errorf("malformed join request: %w", err)
	}
	if !config.ValidNodeName(req.NodeName) {
		return req, nil, fmt.Errorf("node name %q is not a lowercase DNS name of at most %d characters (letters, digits, '-', single dots between labels)", req.NodeName, config.MaxNodeNameLength)
	}
	if len(req.NodePassword) < 16 {
		return req, nil, errors.New("node password missing or too short")
	}
	if len(req.Addresses) == 0 {
		return req, nil, errors.New("no node address given")
	}
	ips := make([]net.IP, 0, len(req.Addresses))
	for _, a := range req.Addresses {
		ip := net.ParseIP(a)
		if ip == nil {
			return req, nil, fmt.Errorf("address %q is not an IP", a)
		}
		ips = append(ips, ip)
	}
	return req, ips, nil
}

func (s *Service) join(ctx context.Context, req join.Request, ips []net.IP) (*join.Response, int, error) {
	client, err := s.kube()
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	apiservers := apiServerEndpoints(ctx, client)
	if err := s.checkAddresses(ctx, client, req.NodeName, ips, apiservers); err != nil {
		var refused addressRefused
		if errors.As(err, &refused) {
			return nil, http.StatusBadRequest, err
		}
		return nil, http.StatusInternalServerError, err
	}
	_, err = client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret(req.NodeName), metav1.GetOptions{})
	newName := apierrors.IsNotFound(err)
	if err := CheckNodePassword(ctx, client, req.NodeName, req.NodePassword, false); err != nil {
		if errors.As(err, new(NameTaken)) {
			return nil, http.StatusConflict, err
		}
		return nil, http.StatusInternalServerError, err
	}
	// The check above and the signing below are one step for each address:
	// claimed here, no other node is signed for it.
	if err := claimAddresses(ctx, client, req.NodeName, ips, time.Now()); err != nil {
		if newName {
			// Refused before any certificate: the name stays free.
			err = errors.Join(err, forgetPassword(ctx, client, req.NodeName))
		}
		var refused addressRefused
		if errors.As(err, &refused) {
			return nil, http.StatusBadRequest, err
		}
		return nil, http.StatusServiceUnavailable, err
	}
	resp := &join.Response{Certificates: map[string][]byte{}, Cluster: s.Cluster.Join()}
	creds := join.Credentials
	if _, ok := req.CSRs[join.RetiredFlannel]; ok {
		creds = append(slices.Clip(creds), join.RetiredFlannel) // an agent of an earlier version
	}
	for _, cred := range creds {
		cert, err := s.PKI.SignNode(cred, req.NodeName, ips, req.CSRs[cred], time.Now())
		if errors.Is(err, pki.ErrAuthority) {
			s.Log.Error(err, "Sign node certificate", "node", req.NodeName)
			return nil, http.StatusInternalServerError, errors.New("the server cannot sign certificates now; see its log")
		} else if err != nil {
			return nil, http.StatusBadRequest, err
		}
		resp.Certificates[cred] = cert
	}
	if resp.ClientCA, err = os.ReadFile(s.PKI.Cert(pki.ClientCA)); err != nil {
		return nil, http.StatusInternalServerError, err
	}
	for _, hp := range apiservers {
		resp.Cluster.Servers = append(resp.Cluster.Servers, "https://"+hp)
	}
	return resp, http.StatusOK, nil
}

// apiServerEndpoints lists host:port of every apiserver, from the
// `kubernetes` Service's endpoints (every server registers itself there).
func apiServerEndpoints(ctx context.Context, client kubernetes.Interface) []string {
	slice, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range slice.Ports {
		if p.Port == nil {
			continue
		}
		for _, e := range slice.Endpoints {
			for _, a := range e.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
			}
		}
	}
	return out
}
