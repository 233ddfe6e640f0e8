package server

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/token"
)

func apiserverEndpoints(addresses ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
		Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}}, AddressType: discoveryv1.AddressTypeIPv4}
	for _, a := range addresses {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return es
}

func etcdServerNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{EtcdMemberFinalizer}}}
}

func TestCountServers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		want    int
	}{
		{"one running", []runtime.Object{apiserverEndpoints("10.0.0.1")}, 1},
		{"three running", []runtime.Object{apiserverEndpoints("10.0.0.1", "10.0.0.2", "10.0.0.3")}, 3},
		// Two etcd servers stopped: their Nodes still count them.
		{"etcd members stopped", []runtime.Object{apiserverEndpoints("10.0.0.1"), etcdServerNode("a"), etcdServerNode("b"), etcdServerNode("c"), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent"}}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := countServers(context.Background(), fake.NewClientset(tc.objects...))
			if err != nil || n != tc.want {
				t.Fatalf("%d servers, %v; want %d", n, err, tc.want)
			}
		})
	}
}

// TestTokenRotateRefusesWithManyServers: with a second server the server
// token stays as it was; with one it is rotated.
func TestTokenRotateRefusesWithManyServers(t *testing.T) {
	l := datadir.New(t.TempDir())
	if err := os.MkdirAll(l.ServerDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	old := token.Token{CAHash: testCAHash, Secret: "the-server-token-secret-0123456789"}
	if err := token.WriteFile(l.Token(), old); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(apiserverEndpoints("10.0.0.1", "10.0.0.2"))
	tokens := &Tokens{client: client, caHash: testCAHash, layout: l}
	err := tokens.Rotate(context.Background())
	if err == nil || !strings.Contains(err.Error(), "this cluster has 2 servers") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("rotate with two servers: %v", err)
	}
	if have := readToken(t, l.Token()); have != old {
		t.Fatal("a refused rotation changed the token file")
	}

	tokens.client = fake.NewClientset(apiserverEndpoints("10.0.0.1"))
	if err := tokens.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if have := readToken(t, l.Token()); have == old || have.CAHash != testCAHash {
		t.Fatalf("rotate with one server: token file %v", have)
	}
}

// bootstrapSecret is a bootstrap token Secret with a description.
func bootstrapSecret(id, secret, description string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data: map[string][]byte{bootstrapapi.BootstrapTokenIDKey: []byte(id), bootstrapapi.BootstrapTokenSecretKey: []byte(secret),
			bootstrapapi.BootstrapTokenDescriptionKey: []byte(description)},
	}
}

// TestServerTokenUnderOneID: at start the server token's bootstrap token is
// the one its slow derivation gives; one an earlier kubling derived by
// SHA-256 from the same secret is removed, other tokens are left.
func TestServerTokenUnderOneID(t *testing.T) {
	ctx := context.Background()
	tok := token.Token{CAHash: testCAHash, Secret: "the-server-token-secret-0123456789"}
	client := fake.NewClientset(
		bootstrapSecret("ff637a", "7947de26a27a5335", DurableTokenDescription),         // the SHA-256 era's
		bootstrapSecret("aaaaaa", "0123456789abcdef", DurableAgentTokenDescription),    // the agent token
		bootstrapSecret("bbbbbb", "0123456789abcdef", "kubling token create --ttl 1h"), // a user's
	)
	if err := applyDurableToken(ctx, client, tok, DurableTokenDescription); err != nil {
		t.Fatal(err)
	}
	if err := removeReplacedServerTokens(ctx, client, tok); err != nil {
		t.Fatal(err)
	}
	id, _ := tok.Bootstrap()
	list, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list.Items {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	want := []string{"bootstrap-token-aaaaaa", "bootstrap-token-bbbbbb", "bootstrap-token-" + id}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("bootstrap tokens %v, want %v", names, want)
	}
}
