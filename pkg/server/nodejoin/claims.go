package nodejoin

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubling/kubling/pkg/server/apply"
)

// An address claim ties a serving-certificate address to the node it was
// signed for: a Lease in kube-system named for the address, holding the
// node's name, owned by the node's password Secret (so it goes when that
// goes: the node deleted, or joined and never registered, a day later).
// Claiming is a Create, so of two nodes joining at once with one address,
// one gets it; checking the Nodes' reported addresses alone let both pass,
// and let a node that joined but had not registered yet lose its address.
const (
	claimPrefix  = "kubling-node-address-"
	ClaimLabel   = "kubling.io/node-address"
	claimAddress = "kubling.io/address"
)

func claimName(ip net.IP) string { return claimPrefix + hex.EncodeToString(ip.To16()) }

// claimAddresses claims each of ips for node before its certificate is
// signed, taking over a claim whose node is gone or has moved to another
// address, and then releases node's claims on addresses it no longer
// names. A claim held by another node is refused (addressRefused); one
// changed meanwhile by another join asks the node to try again.
func claimAddresses(ctx context.Context, client kubernetes.Interface, node string, ips []net.IP, now time.Time) error {
	leases := client.CoordinationV1().Leases(metav1.NamespaceSystem)
	password, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret(node), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read node password: %w", err)
	}
	want := map[string]bool{}
	for _, ip := range ips {
		name := claimName(ip)
		want[name] = true
		claim := newClaim(name, node, ip, password, now)
		_, err := leases.Create(ctx, claim, metav1.CreateOptions{FieldManager: apply.FieldManager})
		if err == nil {
			continue
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("claim address %s: %w", ip, err)
		}
		held, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read the claim on address %s: %w", ip, err)
		}
		holder := ""
		if held.Spec.HolderIdentity != nil {
			holder = *held.Spec.HolderIdentity
		}
		if holder != node {
			if err := checkStale(ctx, client, holder, ip); err != nil {
				return err
			}
		}
		claim.ResourceVersion = held.ResourceVersion
		if _, err := leases.Update(ctx, claim, metav1.UpdateOptions{FieldManager: apply.FieldManager}); apierrors.IsConflict(err) {
			return fmt.Errorf("address %s: another node is joining with it at this moment; try again", ip)
		} else if err != nil {
			return fmt.Errorf("claim address %s: %w", ip, err)
		}
	}
	// Addresses this node held before (it moved): free for others.
	claims, err := leases.List(ctx, metav1.ListOptions{LabelSelector: ClaimLabel + "=true"})
	if err != nil {
		return fmt.Errorf("list node %s's addresses: %w", node, err)
	}
	for _, l := range claims.Items {
		if want[l.Name] || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != node {
			continue
		}
		rv := l.ResourceVersion
		err := leases.Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("release node %s's former address %s: %w", node, l.Annotations[claimAddress], err)
		}
	}
	return nil
}

func newClaim(name, node string, ip net.IP, password *corev1.Secret, now time.Time) *coordinationv1.Lease {
	at := metav1.NewMicroTime(now)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: metav1.NamespaceSystem,
			Labels:      map[string]string{ClaimLabel: "true"}, // node names may be longer than a label
			Annotations: map[string]string{claimAddress: ip.String()},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret",
				Name: password.Name, UID: password.UID}},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &node, AcquireTime: &at},
	}
}

// checkStale allows taking over a claim on ip held by holder only when
// holder no longer stands behind it: its password is gone or marked
// deleted (its Node was deleted), or its Node reports other addresses (it
// moved). A holder that joined and has not registered keeps it: its
// machine may be starting (OrphanGrace ends that).
func checkStale(ctx context.Context, client kubernetes.Interface, holder string, ip net.IP) error {
	pw, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret(holder), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read node %s's password: %w", holder, err)
	}
	if _, deleted := pw.Annotations[NodeDeletedAnnotation]; deleted {
		return nil
	}
	n, err := client.CoreV1().Nodes().Get(ctx, holder, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return addressRefused{fmt.Sprintf("address %s was given to node %s, which joined and has not registered yet; give this node its own --node-ip (if that machine is gone: kubectl delete secret -n kube-system %s)", ip, holder, PasswordSecret(holder))}
	} else if err != nil {
		return fmt.Errorf("read node %s: %w", holder, err)
	}
	for _, a := range n.Status.Addresses {
		if have := net.ParseIP(a.Address); have != nil && have.Equal(ip) {
			return addressRefused{fmt.Sprintf("address %s belongs to node %s; give this node its own --node-ip (or delete the old node: kubectl delete node %s)", ip, holder, holder)}
		}
	}
	return nil
}

// forgetPassword removes the password a refused first join stored.
func forgetPassword(ctx context.Context, client kubernetes.Interface, node string) error {
	err := client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, PasswordSecret(node), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove the password of refused node %s: %w", node, err)
	}
	return nil
}
