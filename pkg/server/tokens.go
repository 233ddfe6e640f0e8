package server

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/token"
)

// Tokens manages extra join tokens: upstream bootstrap tokens in the join
// group, printed in kubling's token form (pinning the cluster CA).
type Tokens struct {
	client kubernetes.Interface
	caHash string
	layout datadir.Layout
}

// NewTokens works on the cluster whose server data dir is l, as its admin.
func NewTokens(l datadir.Layout) (*Tokens, error) {
	ca, err := pki.PKI{Dir: l.ServerTLS()}.CABundle()
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA (is %s a server's data dir?): %w", l.Root, err)
	}
	rest, err := clientcmd.BuildConfigFromFlags("", l.AdminKubeconfig())
	if err != nil {
		return nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	rest.Timeout = 15 * time.Second
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, err
	}
	return &Tokens{client: client, caHash: token.CAHash(ca), layout: l}, nil
}

// TokenInfo describes one join token.
type TokenInfo struct {
	ID          string
	Expires     time.Time // zero: never
	Description string
	Durable     bool
}

// Create makes a join token valid for ttl (0: no expiry) and returns it in
// full form.
func (t *Tokens) Create(ctx context.Context, ttl time.Duration, description string) (string, error) {
	raw, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return "", err
	}
	id, secret, _ := strings.Cut(raw, ".")
	data := map[string][]byte{
		bootstrapapi.BootstrapTokenIDKey:               []byte(id),
		bootstrapapi.BootstrapTokenSecretKey:           []byte(secret),
		bootstrapapi.BootstrapTokenUsageAuthentication: []byte("true"),
		bootstrapapi.BootstrapTokenExtraGroupsKey:      []byte(join.Group),
	}
	if description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = []byte(description)
	}
	if ttl > 0 {
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(time.Now().Add(ttl).UTC().Format(time.RFC3339))
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data:       data,
	}
	if _, err := t.client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return token.Token{CAHash: t.caHash, Secret: raw}.String(), nil
}

// List returns the join tokens, durable first, then by expiry.
func (t *Tokens) List(ctx context.Context) ([]TokenInfo, error) {
	secrets, err := t.client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken)})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	var out []TokenInfo
	for _, s := range secrets.Items {
		if !strings.Contains(string(s.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]), join.Group) {
			continue // not a join token
		}
		info := TokenInfo{ID: string(s.Data[bootstrapapi.BootstrapTokenIDKey]), Description: string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey])}
		info.Durable = info.Description == DurableTokenDescription || info.Description == DurableAgentTokenDescription
		if exp := string(s.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
			if info.Expires, err = time.Parse(time.RFC3339, exp); err != nil {
				return nil, fmt.Errorf("token %s: expiration %q: %w", info.ID, exp, err)
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Durable != out[j].Durable {
			return out[i].Durable
		}
		return out[i].Expires.Before(out[j].Expires)
	})
	return out, nil
}

// Delete removes a join token by its ID (or by the whole token). The server's
// durable token cannot be deleted this way: it comes back at the next start.
func (t *Tokens) Delete(ctx context.Context, idOrToken string) (string, error) {
	id := idOrToken
	if parsed, err := token.Parse(idOrToken); err == nil && strings.Contains(parsed.Secret, ".") {
		id, _, _ = strings.Cut(parsed.Secret, ".")
	}
	if !bootstraputil.IsValidBootstrapTokenID(id) {
		return "", fmt.Errorf("%q is not a token ID (6 lowercase letters or digits; see `kubling token list`)", idOrToken)
	}
	secrets := t.client.CoreV1().Secrets(metav1.NamespaceSystem)
	s, err := secrets.Get(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("token %s: %w", id, err)
	}
	switch string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey]) {
	case DurableTokenDescription:
		return "", fmt.Errorf("token %s is the server's durable token; it cannot be deleted (it would come back at the next start)", id)
	case DurableAgentTokenDescription:
		return "", fmt.Errorf("token %s is the cluster's agent token; replace it with `kubling token rotate --agent`", id)
	}
	if err := secrets.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil {
		return "", fmt.Errorf("delete token %s: %w", id, err)
	}
	return id, nil
}

// Rotate replaces the server's durable join token with a new secret (the
// same CA hash): the token file and the bootstrap token behind it. Joined
// agents go on with their certificates; new joins need the new token. The
// new bootstrap token exists before the file changes, and the old one is
// deleted last, so a failure leaves a token that works. The other servers
// take the new token from the datastore within seconds (clusterKeys'
// rotation records), or at their next start.
func (t *Tokens) Rotate(ctx context.Context) error {
	path := t.layout.Token()
	old, err := token.CheckOwnership(path, nil)
	if err != nil {
		return err
	}
	if old == nil {
		return fmt.Errorf("no join token at %s (is %s a server's data dir?)", path, t.layout.Root)
	}
	secret, err := token.NewSecret()
	if err != nil {
		return err
	}
	rotated := token.Token{CAHash: t.caHash, Secret: secret}
	if err := applyDurableToken(ctx, t.client, rotated, DurableTokenDescription); err != nil {
		return err
	}
	// The running server seals the cluster keys in the datastore with the
	// new secret within seconds (clusterKeys); until then the old one
	// opens them. Kept in the previous-tokens file, it also stays accepted
	// as --token (the data dir's token is then used).
	if err := appendLine(t.layout.PreviousTokens(), old.String()); err != nil {
		return err
	}
	if err := token.WriteFile(path, rotated); err != nil {
		return err
	}
	if err := deleteBootstrapToken(ctx, t.client, *old); err != nil {
		return fmt.Errorf("the old token: %w", err)
	}
	return nil
}

// RotateAgent replaces the cluster's agent token with a new random one and
// writes it to this server's agent-token file; the other servers' files
// follow within a minute. Joined agents go on with their certificates; new
// joins need the new token. The old token is deleted last, so a failure
// leaves one that works.
func (t *Tokens) RotateAgent(ctx context.Context) error {
	old, err := durableAgentTokens(ctx, t.client)
	if err != nil {
		return err
	}
	secret, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return err
	}
	rotated := token.Token{CAHash: t.caHash, Secret: secret}
	if err := applyDurableToken(ctx, t.client, rotated, DurableAgentTokenDescription); err != nil {
		return err
	}
	if err := token.WriteFile(t.layout.AgentToken(), rotated); err != nil {
		return err
	}
	for _, o := range old {
		if err := deleteBootstrapToken(ctx, t.client, o); err != nil {
			return fmt.Errorf("the old agent token: %w", err)
		}
	}
	return nil
}

// appendLine adds line to the file at path (made 0600), synced.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serverTokenID is the server token's bootstrap-token id, read from the
// token file at each use (a rotation on another server replaces the file
// while this one runs), derived again only when the file changed.
type serverTokenID struct {
	path string

	mu         sync.Mutex
	secret, id string
}

func (s *serverTokenID) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := token.ReadFile(s.path)
	if err != nil || t == nil {
		return s.id // the last one known
	}
	if t.Secret != s.secret {
		s.id, _ = t.Bootstrap()
		s.secret = t.Secret
	}
	return s.id
}
