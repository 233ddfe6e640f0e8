package nodejoin

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/user"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/pki"
)

const (
	serverIP = "192.0.2.1"
	password = "0123456789abcdef-machine-a"
	other    = "0123456789abcdef-machine-b"
)

// testService is a join service over a real PKI in a temporary folder and
// a fake cluster holding objs plus the `kubernetes` endpoints (one server).
func testService(t *testing.T, objs ...runtime.Object) (*Service, *fake.Clientset) {
	t.Helper()
	p, _, err := pki.Ensure(pki.Options{Dir: t.TempDir(), APIServerSAN: pki.SANs{IPs: []net.IP{net.ParseIP(serverIP)}}})
	if err != nil {
		t.Fatal(err)
	}
	port := int32(6443)
	objs = append(objs, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault},
		Ports:      []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.2"}}},
	})
	client := fake.NewClientset(objs...)
	s := &Service{
		PKI:       p,
		Cluster:   config.Cluster{ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16")},
		ServerIPs: []net.IP{net.ParseIP(serverIP), net.ParseIP("127.0.0.1")},
		Client:    func() (kubernetes.Interface, error) { return client, nil },
		Log:       klog.Background(),
	}
	return s, client
}

// csrs makes a certificate request per credential, each asking for a
// subject the server must ignore.
func csrs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, cred := range join.Credentials {
		keyPEM, err := keyutil.MakeEllipticPrivateKeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "system:admin", Organization: []string{"system:masters"}}, []string{"kubernetes"}, []net.IP{net.ParseIP(serverIP)})
		if err != nil {
			t.Fatal(err)
		}
		out[cred] = csr
	}
	return out
}

func request(t *testing.T, name, pw string, addrs ...string) join.Request {
	return join.Request{NodeName: name, NodePassword: pw, Addresses: addrs, CSRs: csrs(t)}
}

// post sends body to the join handler as the given user (nil: none).
func post(s *Service, u user.Info, body []byte) *httptest.ResponseRecorder {
	return postTo(s, join.JoinPath, u, body)
}

// postTo sends body to the handler of path as the given user (nil: none).
func postTo(s *Service, path string, u user.Info, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if u != nil {
		r = r.WithContext(genericrequest.WithUser(r.Context(), u))
	}
	w := httptest.NewRecorder()
	s.Handlers()[path].ServeHTTP(w, r)
	return w
}

var joiner = &user.DefaultInfo{Name: "system:bootstrap:abcdef", Groups: []string{"system:bootstrappers", join.Group}}

func postJoin(t *testing.T, s *Service, req join.Request) *httptest.ResponseRecorder {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return post(s, joiner, body)
}

func TestJoinNeedsTheJoinGroup(t *testing.T) {
	s, _ := testService(t)
	body, _ := json.Marshal(request(t, "n1", password, "192.0.2.10"))
	for name, u := range map[string]user.Info{
		"no user":           nil,
		"other bootstrap":   &user.DefaultInfo{Name: "system:bootstrap:xyz", Groups: []string{"system:bootstrappers"}},
		"a node":            &user.DefaultInfo{Name: "system:node:n2", Groups: []string{"system:nodes", "system:authenticated"}},
		"cluster admin too": &user.DefaultInfo{Name: "admin", Groups: []string{"system:masters"}},
	} {
		if w := post(s, u, body); w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403: %s", name, w.Code, w.Body)
		}
	}
	r := httptest.NewRequest(http.MethodGet, join.JoinPath, nil)
	w := httptest.NewRecorder()
	s.Handlers()[join.JoinPath].ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", w.Code)
	}
}

// TestJoinRefusesBadRequests: each is the joiner's mistake (400, which the
// agent does not retry), never a server error.
func TestJoinRefusesBadRequests(t *testing.T) {
	s, client := testService(t)
	cases := map[string]join.Request{
		"double dot":     request(t, "a..b", password, "192.0.2.10"),
		"240 characters": request(t, strings.Repeat("a", 240), password, "192.0.2.10"),
		"upper case":     request(t, "Node1", password, "192.0.2.10"),
		"empty name":     request(t, "", password, "192.0.2.10"),
		"short password": request(t, "n1", "short", "192.0.2.10"),
		"no address":     request(t, "n1", password),
		"not an IP":      request(t, "n1", password, "example.com"),
		"loopback":       request(t, "n1", password, "127.0.0.1"),
		"unspecified":    request(t, "n1", password, "0.0.0.0"),
		"link-local":     request(t, "n1", password, "169.254.1.1"),
		"service range":  request(t, "n1", password, "10.43.0.1"),
		"pod range":      request(t, "n1", password, "10.42.3.4"),
		"server's IP":    request(t, "n1", password, serverIP),
		"an apiserver's": request(t, "n1", password, "192.0.2.2"),
		"second is bad":  request(t, "n1", password, "192.0.2.10", "10.43.0.10"),
		"no CSRs":        {NodeName: "n1", NodePassword: password, Addresses: []string{"192.0.2.10"}},
		"CSR not PEM":    {NodeName: "n1", NodePassword: password, Addresses: []string{"192.0.2.10"}, CSRs: map[string][]byte{join.KubeletClient: []byte("x")}},
	}
	for name, req := range cases {
		if w := postJoin(t, s, req); w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, w.Code, w.Body)
		}
	}
	if w := post(s, joiner, []byte("{not json")); w.Code != http.StatusBadRequest {
		t.Errorf("malformed JSON: status %d, want 400", w.Code)
	}
	if w := post(s, joiner, bytes.Repeat([]byte(" "), MaxRequestBytes+1)); w.Code != http.StatusBadRequest {
		t.Errorf("oversized body: status %d, want 400", w.Code)
	}
	// Only the CSR cases get as far as storing a password (for n1, which
	// they may hold: the checks before passed); no other name is held.
	secrets, _ := client.CoreV1().Secrets(metav1.NamespaceSystem).List(context.Background(), metav1.ListOptions{})
	for _, sec := range secrets.Items {
		if sec.Name != PasswordSecret("n1") {
			t.Errorf("a refused join stored %s", sec.Name)
		}
	}
}

// TestJoinRefusesAnotherNodesAddress: a serving certificate naming another
// node's address would let its holder answer the apiserver's exec and log
// requests for that node.
func TestJoinRefusesAnotherNodesAddress(t *testing.T) {
	n2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.20"}}}}
	s, _ := testService(t, n2)
	w := postJoin(t, s, request(t, "n1", password, "192.0.2.20"))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "node n2") {
		t.Errorf("n1 naming n2's address: status %d, want 400 naming n2: %s", w.Code, w.Body)
	}
	// A node's own address, already on its Node object, is fine.
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}}}}
	s, _ = testService(t, n1, n2)
	if _, err := s.kube(); err != nil {
		t.Fatal(err)
	}
	if err := CheckNodePassword(context.Background(), s.client, "n1", password, true); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Errorf("n1 with its own address: status %d: %s", w.Code, w.Body)
	}
}

// TestJoinSignsServerChosenSubjects: whatever the requests ask for, the
// certificates name the node, its addresses and nothing else.
func TestJoinSignsServerChosenSubjects(t *testing.T) {
	s, _ := testService(t)
	w := postJoin(t, s, request(t, "n1", password, "192.0.2.10"))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp join.Response
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Certificates) != len(join.Credentials) {
		t.Errorf("got %d certificates, want %d (%v)", len(resp.Certificates), len(join.Credentials), join.Credentials)
	}
	leaf := func(cred string) *x509.Certificate {
		block, _ := pem.Decode(resp.Certificates[cred])
		if block == nil {
			t.Fatalf("%s: no certificate", cred)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	client := leaf(join.KubeletClient)
	if client.Subject.CommonName != "system:node:n1" || strings.Join(client.Subject.Organization, ",") != "system:nodes" || len(client.IPAddresses)+len(client.DNSNames) != 0 {
		t.Errorf("kubelet client certificate: %v %v %v", client.Subject, client.IPAddresses, client.DNSNames)
	}
	serving := leaf(join.KubeletServing)
	var ips []string
	for _, ip := range serving.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, ","); got != "127.0.0.1,192.0.2.10" {
		t.Errorf("serving certificate IPs %s, want 127.0.0.1,192.0.2.10", got)
	}
	if got := strings.Join(serving.DNSNames, ","); got != "n1,localhost" {
		t.Errorf("serving certificate names %s, want n1,localhost", got)
	}
	if proxy := leaf(join.KubeProxy); proxy.Subject.CommonName != "system:kube-proxy" || len(proxy.Subject.Organization) != 0 {
		t.Errorf("kube-proxy certificate: %v", proxy.Subject)
	}
	// The NetworkPolicy controller's: one user for every node, no group
	// (RBAC grants that user reads only).
	if np := leaf(join.NetworkPolicy); np.Subject.CommonName != "kubling:network-policy" || len(np.Subject.Organization) != 0 {
		t.Errorf("network-policy certificate: %v", np.Subject)
	}
	if len(resp.Cluster.Servers) != 1 || resp.Cluster.Servers[0] != "https://192.0.2.2:6443" {
		t.Errorf("servers %v", resp.Cluster.Servers)
	}
}

// TestNodeNameTakeover: a stored password always decides, also before the
// node has registered (the window an earlier version left open).
func TestNodeNameTakeover(t *testing.T) {
	s, client := testService(t)
	ctx := context.Background()
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Fatalf("first join: %d %s", w.Code, w.Body)
	}
	// No Node object yet: another machine is still refused.
	if w := postJoin(t, s, request(t, "n1", other, "192.0.2.11")); w.Code != http.StatusConflict {
		t.Errorf("second machine before registration: status %d, want 409: %s", w.Code, w.Body)
	}
	// The first machine joins again (a restart) with its own password.
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Errorf("same machine again: %d %s", w.Code, w.Body)
	}
	// Registered: still refused.
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n1", other, "192.0.2.11")); w.Code != http.StatusConflict {
		t.Errorf("second machine after registration: status %d, want 409", w.Code)
	}
	// A node that exists without a stored password is not free either.
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "by-hand"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "by-hand", password, "192.0.2.12")); w.Code != http.StatusConflict {
		t.Errorf("node without password: status %d, want 409", w.Code)
	}
	// The owner (the server's own node) takes its name back.
	if err := CheckNodePassword(ctx, client, "n1", other, true); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusConflict {
		t.Errorf("after the owner took the name: status %d, want 409", w.Code)
	}
	// The stored value is a bcrypt hash, never the password.
	sec, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret("n1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sec.Data["hash"], []byte(other)) || !bytes.HasPrefix(sec.Data["hash"], []byte("$2")) {
		t.Errorf("stored %q, want a bcrypt hash", sec.Data["hash"])
	}
}

func TestServeCA(t *testing.T) {
	s, _ := testService(t)
	w := httptest.NewRecorder()
	s.Handlers()[join.CACertsPath].ServeHTTP(w, httptest.NewRequest(http.MethodGet, join.CACertsPath, nil))
	want, _ := s.PKI.CABundle()
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != string(want) {
		t.Errorf("GET /cacerts: %d %q", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	s.Handlers()[join.CACertsPath].ServeHTTP(w, httptest.NewRequest(http.MethodPost, join.CACertsPath, nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /cacerts: %d", w.Code)
	}
}

// TestPasswordCleaner: deleting a Node frees its name; the sweep removes
// only old Secrets of absent nodes.
func TestPasswordCleaner(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	secret := func(node string, age time.Duration) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: PasswordSecret(node), Namespace: metav1.NamespaceSystem, UID: k8stypes.UID("uid-" + node),
			Labels: map[string]string{PasswordSecretLabel: "true"}, CreationTimestamp: metav1.NewTime(now.Add(-age)),
		}}
	}
	client := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "live"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}},
		secret("live", 48*time.Hour), secret("doomed", time.Minute),
		secret("gone-long-ago", 48*time.Hour), secret("just-joined", time.Hour),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated.node-password.kubling", Namespace: metav1.NamespaceSystem, CreationTimestamp: metav1.NewTime(now.Add(-48 * time.Hour))}},
	)
	factory := informers.NewSharedInformerFactory(client, 0)
	defer factory.Shutdown()
	c := &PasswordCleaner{Client: func() (kubernetes.Interface, error) { return client, nil }, Log: klog.Background(), Now: func() time.Time { return now },
		Informers: func() (informers.SharedInformerFactory, error) { return factory, nil }}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	readyCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Ready(readyCtx); err != nil {
		t.Fatal(err)
	}
	exists := func(node string) bool {
		_, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret(node), metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]bool{"live": true, "doomed": true, "gone-long-ago": false, "just-joined": true, "unrelated": true} {
		if got := exists(node); got != want {
			t.Errorf("after the sweep, %s's password exists: %v, want %v", node, got, want)
		}
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	marked := func(node string) bool {
		sec, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret(node), metav1.GetOptions{})
		return err == nil && sec.Annotations[NodeDeletedAnnotation] != ""
	}
	deadline := time.Now().Add(10 * time.Second)
	for !marked("doomed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !marked("doomed") || marked("live") {
		t.Fatalf("after deleting node doomed: doomed marked %v, live marked %v", marked("doomed"), marked("live"))
	}
	// A day after the deletion the sweep removes the Secret.
	c.Now = func() time.Time { return now.Add(OrphanGrace + time.Minute) }
	if err := c.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if exists("doomed") || !exists("live") {
		t.Errorf("a day after: doomed's password exists %v (want false), live's %v (want true)", exists("doomed"), exists("live"))
	}
}

// TestDeletedNodeFreesItsName: once a Node is deleted another machine may
// take the name; if the name's own machine registers the Node again first
// (its kubelet came back before it could join), it keeps the name.
func TestDeletedNodeFreesItsName(t *testing.T) {
	ctx := context.Background()
	deleted := func(client *fake.Clientset) {
		t.Helper()
		sec, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret("n1"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Annotations = map[string]string{NodeDeletedAnnotation: time.Now().UTC().Format(time.RFC3339)}
		if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Deleted, gone: another machine takes the name.
	s, client := testService(t)
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Fatalf("first join: %d %s", w.Code, w.Body)
	}
	deleted(client)
	if w := postJoin(t, s, request(t, "n1", other, "192.0.2.11")); w.Code != http.StatusOK {
		t.Errorf("another machine after the node's deletion: %d %s", w.Code, w.Body)
	}
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusConflict {
		t.Errorf("the old machine after the name was taken: %d, want 409", w.Code)
	}
	// Deleted, then registered again by its own machine: it keeps the name.
	s, client = testService(t)
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Fatalf("first join: %d %s", w.Code, w.Body)
	}
	deleted(client)
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n1", other, "192.0.2.11")); w.Code != http.StatusConflict {
		t.Errorf("another machine while the re-registered node exists: %d, want 409", w.Code)
	}
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Errorf("the name's own machine after its node came back: %d %s", w.Code, w.Body)
	}
}

// TestJoinOldAgentGetsFlannelAsTheNode: an agent of an earlier version asks
// for flannel's own credential too; it gets one, naming the node itself.
func TestJoinOldAgentGetsFlannelAsTheNode(t *testing.T) {
	s, _ := testService(t)
	req := request(t, "n1", password, "192.0.2.10")
	req.CSRs[join.RetiredFlannel] = req.CSRs[join.KubeProxy]
	w := postJoin(t, s, req)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp join.Response
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(resp.Certificates[join.RetiredFlannel])
	if block == nil {
		t.Fatal("no flannel certificate for an old agent")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "system:node:n1" || strings.Join(c.Subject.Organization, ",") != "system:nodes" {
		t.Errorf("old agent's flannel certificate is %v, want the node's identity", c.Subject)
	}
}
