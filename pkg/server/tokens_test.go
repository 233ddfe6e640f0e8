package server

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubling/kubling/pkg/token"
)

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
