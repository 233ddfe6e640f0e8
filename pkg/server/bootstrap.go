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
// RBAC, the bootstrap token behind the server's durable join token, and the
// server node's password (so no agent can take its name).
type clusterBootstrap struct {
	kubeconfig   string
	applier      *apply.Applier
	token        token.Token
	node         string // "" when the server runs no node
	nodePassword string
}

var _ component.Component = (*clusterBootstrap)(nil)

// newClusterBootstrap prepares the bootstrap; node is nil with --disable-agent.
func newClusterBootstrap(l datadir.Layout, applier *apply.Applier, t token.Token, node *agent.Node) (*clusterBootstrap, error) {
	b := &clusterBootstrap{kubeconfig: l.AdminKubeconfig(), applier: applier, token: t}
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
	if err := applyDurableToken(ctx, client, b.token); err != nil {
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
	return nil
}

func (b *clusterBootstrap) Ready(context.Context) error { return nil }
func (b *clusterBootstrap) Stop() error                 { return nil }

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

// applyDurableToken makes the upstream bootstrap token behind the server's
// durable join token t (its ID and secret derive from t's secret), so the
// apiserver's own bootstrap-token authenticator checks every join.
func applyDurableToken(ctx context.Context, client kubernetes.Interface, t token.Token) error {
	id, secret := t.Bootstrap()
	ac := corev1ac.Secret(bootstrapapi.BootstrapTokenSecretPrefix+id, metav1.NamespaceSystem).
		WithType(bootstrapapi.SecretTypeBootstrapToken).
		WithData(map[string][]byte{
			bootstrapapi.BootstrapTokenIDKey:               []byte(id),
			bootstrapapi.BootstrapTokenSecretKey:           []byte(secret),
			bootstrapapi.BootstrapTokenUsageAuthentication: []byte("true"),
			bootstrapapi.BootstrapTokenExtraGroupsKey:      []byte(join.Group),
			bootstrapapi.BootstrapTokenDescriptionKey:      []byte(DurableTokenDescription),
		})
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: apply.FieldManager, Force: true}); err != nil {
		return fmt.Errorf("join token: %w", err)
	}
	return nil
}
