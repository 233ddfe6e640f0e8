package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/token"
)

const testCAHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func newAgentTokens(t *testing.T, client kubernetes.Interface, given *token.Token) *agentTokens {
	t.Helper()
	return &agentTokens{client: client, path: filepath.Join(t.TempDir(), "agent-token"), caHash: testCAHash, given: given, log: klog.Background()}
}

// clusterAgentTokens is what the cluster holds: bootstrap-form secrets.
func clusterAgentTokens(t *testing.T, client kubernetes.Interface) []string {
	t.Helper()
	current, err := durableAgentTokens(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range current {
		out = append(out, c.Secret)
	}
	return out
}

func readToken(t *testing.T, path string) token.Token {
	t.Helper()
	stored, err := token.ReadFile(path)
	if err != nil || stored == nil {
		t.Fatalf("agent token file: %v %v", stored, err)
	}
	return *stored
}

func TestAgentTokenFirstStartMakesARandomOne(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	a := newAgentTokens(t, client, nil)
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	got := readToken(t, a.path)
	if got.CAHash != testCAHash || !bootstraputil.IsValidBootstrapToken(got.Secret) {
		t.Fatalf("agent token %q: want the CA hash and a bootstrap token", got.String())
	}
	// Random: its id is no function of its secret, unlike a derived one.
	if derived, _ := (token.Token{Secret: strings.SplitN(got.Secret, ".", 2)[1]}).Bootstrap(); strings.HasPrefix(got.Secret, derived+".") {
		t.Errorf("the id %q derives from the secret", derived)
	}
	if c := clusterAgentTokens(t, client); len(c) != 1 || c[0] != got.Secret {
		t.Fatalf("cluster holds %v, file %s", c, got.Secret)
	}
	s, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(got.Secret[:6]), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]) != join.Group || string(s.Data[bootstrapapi.BootstrapTokenUsageAuthentication]) != "true" || s.Data[bootstrapapi.BootstrapTokenExpirationKey] != nil {
		t.Errorf("bootstrap token data: %v", s.Data)
	}

	// A restart keeps it; a second server adopts it.
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second := newAgentTokens(t, client, nil)
	if err := second.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if readToken(t, a.path) != got || readToken(t, second.path) != got || len(clusterAgentTokens(t, client)) != 1 {
		t.Errorf("restart or second server changed the agent token: %v", clusterAgentTokens(t, client))
	}
}

func TestAgentTokenGivenReplacesTheClusters(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	first := newAgentTokens(t, client, nil)
	if err := first.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	given := token.Token{Secret: "a-secret-of-the-users-own"}
	a := newAgentTokens(t, client, &given)
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id, secret := given.Bootstrap()
	if c := clusterAgentTokens(t, client); len(c) != 1 || c[0] != id+"."+secret {
		t.Fatalf("cluster holds %v, want only the given token", c)
	}
	if got := readToken(t, a.path); got.Secret != id+"."+secret || got.CAHash != testCAHash {
		t.Errorf("file holds %q", got.String())
	}
	// The first server's file follows.
	if err := first.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readToken(t, first.path); got.Secret != id+"."+secret {
		t.Errorf("the other server's file was not brought up to date: %q", got.String())
	}

	other := token.Token{CAHash: strings.Repeat("f", 64), Secret: "a-secret-of-the-users-own"}
	if err := newAgentTokens(t, client, &other).ensure(ctx); err == nil || !strings.Contains(err.Error(), "pins a CA other than") {
		t.Errorf("another cluster's agent token: %v", err)
	}
}

// Two servers starting together on an empty datastore both make one: one
// stays, and both servers end up with it.
func TestAgentTokenRaceKeepsOne(t *testing.T) {
	ctx := context.Background()
	secret := func(name, id, s string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
			Type:       bootstrapapi.SecretTypeBootstrapToken,
			Data: map[string][]byte{bootstrapapi.BootstrapTokenIDKey: []byte(id), bootstrapapi.BootstrapTokenSecretKey: []byte(s),
				bootstrapapi.BootstrapTokenDescriptionKey: []byte(DurableAgentTokenDescription)},
		}
	}
	client := fake.NewClientset(secret("bootstrap-token-bbbbbb", "bbbbbb", "0123456789abcdef"), secret("bootstrap-token-aaaaaa", "aaaaaa", "fedcba9876543210"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-cccccc", Namespace: metav1.NamespaceSystem}, Type: bootstrapapi.SecretTypeBootstrapToken,
			Data: map[string][]byte{bootstrapapi.BootstrapTokenDescriptionKey: []byte("someone's own token")}})
	a := newAgentTokens(t, client, nil)
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if c := clusterAgentTokens(t, client); len(c) != 1 || c[0] != "aaaaaa.fedcba9876543210" {
		t.Errorf("cluster holds %v, want the first by name (same creation time)", c)
	}
	if got := readToken(t, a.path); got.Secret != "aaaaaa.fedcba9876543210" {
		t.Errorf("file holds %q", got.String())
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, "bootstrap-token-cccccc", metav1.GetOptions{}); err != nil {
		t.Errorf("a token that is not the agent token was touched: %v", err)
	}
}
