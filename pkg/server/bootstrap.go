package server

import (
	"context"
	_ "embed"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/agent"
	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/join"
	"github.com/kubling/kubling/pkg/kubeconfig"
	"github.com/kubling/kubling/pkg/server/apply"
	"github.com/kubling/kubling/pkg/server/nodejoin"
	"github.com/kubling/kubling/pkg/token"
)

//go:embed rbac.yaml
var rbacYAML []byte

// DurableTokenDescription marks the bootstrap token behind the server's
// own join token.
const DurableTokenDescription = "kubling server token (durable; from <data-dir>/server/token)"

// clusterBootstrap writes what the cluster needs before nodes join: kubling's
// RBAC, the bootstrap tokens behind the server token and the agent token,
// and the server node's password (so no agent can take its name).
type clusterBootstrap struct {
	kubeconfig   string
	applier      *apply.Applier
	token        token.Token
	agentTokens  agentTokens
	node         string // "" when the server runs no node
	nodePassword string
	stopFollow   context.CancelFunc
}

var _ component.Component = (*clusterBootstrap)(nil)

// newClusterBootstrap prepares the bootstrap: t is the server token,
// agentToken --agent-token (nil without), node nil with --disable-agent.
func newClusterBootstrap(l datadir.Layout, applier *apply.Applier, t token.Token, agentToken *token.Token, node *agent.Node, log klog.Logger) (*clusterBootstrap, error) {
	b := &clusterBootstrap{kubeconfig: l.AdminKubeconfig(), applier: applier, token: t,
		agentTokens: agentTokens{path: l.AgentToken(), caHash: t.CAHash, given: agentToken, log: log}}
	if node != nil {
		password, err := agent.NodePassword(l)
		if err != nil {
			return nil, err
		}
		b.node, b.nodePassword = node.Name(), password
	}
	return b, nil
}

func (b *clusterBootstrap) Name() string { return "cluster-bootstrap" }

func (b *clusterBootstrap) Start(ctx context.Context) error {
	client, err := kubeconfig.NewClient(b.kubeconfig)
	if err != nil {
		return err
	}
	if err := applyDurableToken(ctx, client, b.token, DurableTokenDescription); err != nil {
		return err
	}
	if err := removeReplacedServerTokens(ctx, client, b.token); err != nil {
		return err
	}
	b.agentTokens.client = client
	if err := b.agentTokens.ensure(ctx); err != nil {
		return err
	}
	if err := b.applier.ApplyDocument(ctx, rbacYAML); err != nil {
		return fmt.Errorf("kubling RBAC: %w", err)
	}
	if err := removeRetiredRBAC(ctx, client); err != nil {
		return err
	}
	if b.node != "" {
		if err := nodejoin.CheckNodePassword(ctx, client, b.node, b.nodePassword, true); err != nil {
			return err
		}
	}
	followCtx, stop := context.WithCancel(ctx)
	b.stopFollow = stop
	go b.agentTokens.follow(followCtx)
	return nil
}

func (b *clusterBootstrap) Ready(context.Context) error { return nil }

func (b *clusterBootstrap) Stop() error {
	if b.stopFollow != nil {
		b.stopFollow()
	}
	return nil
}

// retiredRBAC names what earlier versions granted and this one must take
// back: kubling:flannel let one shared identity, held by every node, patch
// any node's status.
const retiredRBAC = "kubling:flannel"

// removeRetiredRBAC deletes the retired role and binding, so certificates
// issued for them by earlier versions lose their rights.
func removeRetiredRBAC(ctx context.Context, client kubernetes.Interface) error {
	rbac := client.RbacV1()
	if err := rbac.ClusterRoleBindings().Delete(ctx, retiredRBAC, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove ClusterRoleBinding %s: %w", retiredRBAC, err)
	}
	if err := rbac.ClusterRoles().Delete(ctx, retiredRBAC, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove ClusterRole %s: %w", retiredRBAC, err)
	}
	return nil
}

// applyDurableToken makes the upstream bootstrap token behind a durable
// kubling token t (the server's or the agents'; description says which): no
// expiry, in kubling's join group, so the apiserver's own bootstrap-token
// authenticator checks every join.
func applyDurableToken(ctx context.Context, client kubernetes.Interface, t token.Token, description string) error {
	id, secret := t.Bootstrap()
	ac := corev1ac.Secret(bootstrapapi.BootstrapTokenSecretPrefix+id, metav1.NamespaceSystem).
		WithType(bootstrapapi.SecretTypeBootstrapToken).
		WithData(map[string][]byte{
			bootstrapapi.BootstrapTokenIDKey:               []byte(id),
			bootstrapapi.BootstrapTokenSecretKey:           []byte(secret),
			bootstrapapi.BootstrapTokenUsageAuthentication: []byte("true"),
			bootstrapapi.BootstrapTokenExtraGroupsKey:      []byte(join.Group),
			bootstrapapi.BootstrapTokenDescriptionKey:      []byte(description),
		})
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: apply.FieldManager, Force: true}); err != nil {
		return fmt.Errorf("join token: %w", err)
	}
	return nil
}

// removeReplacedServerTokens deletes bootstrap tokens made for the server
// token under another id than t's: the one an earlier kubling derived from
// the same secret by SHA-256 (its id, stored in clear, let a snapshot's
// holder test guesses at the secret fast), or one a rotation left.
func removeReplacedServerTokens(ctx context.Context, client kubernetes.Interface, t token.Token) error {
	secrets, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken)})
	if err != nil {
		return fmt.Errorf("list the server token's bootstrap tokens: %w", err)
	}
	id, _ := t.Bootstrap()
	for _, s := range secrets.Items {
		other := string(s.Data[bootstrapapi.BootstrapTokenIDKey])
		if string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey]) != DurableTokenDescription || other == id {
			continue
		}
		if err := deleteBootstrapToken(ctx, client, token.Token{Secret: other + "." + string(s.Data[bootstrapapi.BootstrapTokenSecretKey])}); err != nil {
			return fmt.Errorf("remove a replaced server token: %w", err)
		}
	}
	return nil
}
