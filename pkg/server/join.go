package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/manifests"
	"github.com/kubling/kubling/pkg/server/pki"
)

// joinService answers joining agents on the apiserver's port: the CA for
// anyone (agents check it against their token), certificates for holders of
// a join token. The apiserver authenticates the token (a bootstrap token)
// and RBAC authorises the path before a request gets here.
type joinService struct {
	pki        pki.PKI
	cluster    join.Cluster
	kubeconfig string
	log        klog.Logger

	once      sync.Once
	client    kubernetes.Interface
	clientErr error
}

func (j *joinService) handlers() map[string]http.Handler {
	return map[string]http.Handler{
		join.CACertsPath: http.HandlerFunc(j.serveCA),
		join.JoinPath:    http.HandlerFunc(j.serveJoin),
	}
}

func (j *joinService) kube() (kubernetes.Interface, error) {
	j.once.Do(func() {
		j.client, j.clientErr = kubeconfig.NewClient(j.kubeconfig)
	})
	return j.client, j.clientErr
}

func (j *joinService) serveCA(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	ca, err := j.pki.CABundle()
	if err != nil {
		j.log.Error(err, "Serve CA")
		writeError(w, http.StatusInternalServerError, "cannot read the cluster CA")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(append(ca, '\n'))
}

func (j *joinService) serveJoin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	// RBAC already limits the path to the join group; check again here so a
	// broadened role binding cannot hand out node credentials by accident.
	user, ok := genericrequest.UserFrom(r.Context())
	if !ok || !slices.Contains(user.GetGroups(), join.Group) {
		writeError(w, http.StatusForbidden, "only join tokens may join nodes")
		return
	}
	var req join.Request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 256<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed join request: "+err.Error())
		return
	}
	resp, code, err := j.join(r.Context(), req)
	if err != nil {
		j.log.Info("Join refused", "node", req.NodeName, "token", user.GetName(), "reason", err.Error())
		writeError(w, code, err.Error())
		return
	}
	j.log.Info("Node joined", "node", req.NodeName, "addresses", req.Addresses, "token", user.GetName())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (j *joinService) join(ctx context.Context, req join.Request) (*join.Response, int, error) {
	if !config.ValidNodeName(req.NodeName) {
		return nil, http.StatusBadRequest, fmt.Errorf("node name %q is not a lowercase DNS name", req.NodeName)
	}
	if len(req.NodePassword) < 16 {
		return nil, http.StatusBadRequest, errors.New("node password missing or too short")
	}
	var ips []net.IP
	for _, a := range req.Addresses {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, http.StatusBadRequest, fmt.Errorf("address %q is not an IP", a)
		}
		ips = append(ips, ip)
	}
	client, err := j.kube()
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	if err := checkNodePassword(ctx, client, req.NodeName, req.NodePassword, false); err != nil {
		if errors.As(err, new(nameTaken)) {
			return nil, http.StatusConflict, err
		}
		return nil, http.StatusInternalServerError, err
	}
	resp := &join.Response{Certificates: map[string][]byte{}, Cluster: j.cluster}
	for _, cred := range join.Credentials {
		cert, err := j.pki.SignNode(cred, req.NodeName, ips, req.CSRs[cred], time.Now())
		if errors.Is(err, pki.ErrAuthority) {
			j.log.Error(err, "Sign node certificate", "node", req.NodeName)
			return nil, http.StatusInternalServerError, errors.New("the server cannot sign certificates now; see its log")
		} else if err != nil {
			return nil, http.StatusBadRequest, err
		}
		resp.Certificates[cred] = cert
	}
	if resp.ClientCA, err = os.ReadFile(j.pki.Cert(pki.ClientCA)); err != nil {
		return nil, http.StatusInternalServerError, err
	}
	resp.Cluster.Servers = apiServers(ctx, client)
	return resp, http.StatusOK, nil
}

// apiServers lists the apiservers' addresses from the `kubernetes`
// Service's endpoints (every server registers itself there).
func apiServers(ctx context.Context, client kubernetes.Interface) []string {
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
				out = append(out, "https://"+net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
			}
		}
	}
	return out
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(join.ErrorBody{Message: msg})
}

// nameTaken means another machine already holds a node name.
type nameTaken struct{ node string }

func (e nameTaken) Error() string {
	return fmt.Sprintf("node name %q is already used by another machine; give this one another --node-name (or delete the old node: kubectl delete node %s)", e.node, e.node)
}

// nodePasswordSecret names the Secret that holds a node's password hash.
func nodePasswordSecret(node string) string { return node + ".node-password.kubling" }

// checkNodePassword ties a node name to the first machine that uses it: the
// hash of its per-machine password is kept in a Secret. Another machine (another
// password) is refused while the node exists; once the node is deleted the
// name is free again. A node that exists without a stored password (made
// before kubling kept them, or by hand) is refused too, unless owner says
// the caller is that node's own machine (the server's own node).
func checkNodePassword(ctx context.Context, client kubernetes.Interface, node, password string, owner bool) error {
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	s, err := secrets.Get(ctx, nodePasswordSecret(node), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read node password: %w", err)
	}
	if err == nil && bcrypt.CompareHashAndPassword(s.Data["hash"], []byte(password)) == nil {
		return nil
	}
	if !owner {
		if _, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
			return nameTaken{node: node}
		} else if !apierrors.IsNotFound(err) {
			return err
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: nodePasswordSecret(node), Namespace: metav1.NamespaceSystem, Labels: map[string]string{"kubling.io/node-password": "true"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"hash": hash},
	}
	if s == nil || s.Name == "" {
		// Create, not apply: of two machines joining with one name at
		// once, exactly one wins.
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: manifests.FieldManager}); apierrors.IsAlreadyExists(err) {
			return nameTaken{node: node}
		} else if err != nil {
			return fmt.Errorf("store node password: %w", err)
		}
		return nil
	}
	// The name is free again (its node is gone) or this is its owner: take
	// over the stored password, unless it changed meanwhile.
	want.ResourceVersion = s.ResourceVersion
	if _, err := secrets.Update(ctx, want, metav1.UpdateOptions{FieldManager: manifests.FieldManager}); apierrors.IsConflict(err) {
		return nameTaken{node: node}
	} else if err != nil {
		return fmt.Errorf("store node password: %w", err)
	}
	return nil
}
