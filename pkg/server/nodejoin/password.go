package nodejoin

import (
	"context"
	"fmt"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubling/kubling/pkg/server/apply"
)

// NameTaken means another machine already holds a node name.
type NameTaken struct{ Node string }

func (e NameTaken) Error() string {
	return fmt.Sprintf("node name %q is already used by another machine; give this one another --node-name (or free the name: kubectl delete node %s; a name whose node never registered: kubectl -n kube-system delete secret %s)", e.Node, e.Node, PasswordSecret(e.Node))
}

// PasswordSecretLabel marks the Secrets that hold node password hashes.
const PasswordSecretLabel = "kubling.io/node-password"

// NodeDeletedAnnotation on a password Secret records when its Node was
// deleted: from then on the name is free for another machine whenever no
// Node of that name exists, while the name's own machine (its kubelet may
// register the Node again, e.g. after a power cut) keeps it.
const NodeDeletedAnnotation = "kubling.io/node-deleted-at"

// PasswordSecret names the Secret in kube-system that holds a node's
// password hash.
func PasswordSecret(node string) string { return node + ".node-password.kubling" }

// CheckNodePassword ties a node name to the first machine that uses it: the
// hash of its per-machine password is kept in a Secret. A stored hash is
// always compared: another machine (another password) is refused for as long
// as the Secret exists, whether or not its Node has registered yet, unless
// the PasswordCleaner has marked the Node deleted and no Node of that name
// exists now: deleting the Node frees the name. A Node that exists without a stored password (made by hand, or
// before kubling kept them) is refused too. owner says the caller is the
// name's rightful machine (the server's own node), whose password replaces
// whatever is stored.
func CheckNodePassword(ctx context.Context, client kubernetes.Interface, node, password string, owner bool) error {
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	s, err := secrets.Get(ctx, PasswordSecret(node), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read node password: %w", err)
	}
	found := err == nil
	if found && bcrypt.CompareHashAndPassword(s.Data["hash"], []byte(password)) == nil {
		return nil
	}
	if found && !owner {
		if _, deleted := s.Annotations[NodeDeletedAnnotation]; !deleted {
			return NameTaken{Node: node}
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
			return NameTaken{Node: node} // its machine registered it again
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("read node %s: %w", node, err)
		}
	}
	if !found && !owner {
		if _, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
			return NameTaken{Node: node}
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("read node %s: %w", node, err)
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PasswordSecret(node), Namespace: metav1.NamespaceSystem, Labels: map[string]string{PasswordSecretLabel: "true"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"hash": hash},
	}
	if !found {
		// Create, not apply: of two machines joining with one name at
		// once, exactly one wins.
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: apply.FieldManager}); apierrors.IsAlreadyExists(err) {
			return NameTaken{Node: node}
		} else if err != nil {
			return fmt.Errorf("store node password: %w", err)
		}
		return nil
	}
	// The owner, or a machine taking a deleted node's name, replaces the
	// stored password, unless it changed meanwhile.
	want.ResourceVersion = s.ResourceVersion
	if _, err := secrets.Update(ctx, want, metav1.UpdateOptions{FieldManager: apply.FieldManager}); apierrors.IsConflict(err) {
		return NameTaken{Node: node}
	} else if err != nil {
		return fmt.Errorf("store node password: %w", err)
	}
	return nil
}
