package nodejoin

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	machineC = "0123456789abcdef-machine-c"
	machineD = "0123456789abcdef-machine-d"
)

// TestJoinClaimsEachAddressOnce: the address check and the signing are one
// step. A node that joined and has not registered keeps its address (the
// Nodes' reported addresses alone let a second node take it); a node that
// moved frees its former address, and one whose Node reports another
// address, or whose Node was deleted, loses its claim to the next join. A
// refused first join leaves its name free.
func TestJoinClaimsEachAddressOnce(t *testing.T) {
	s, client := testService(t)
	ctx := context.Background()
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.10")); w.Code != http.StatusOK {
		t.Fatalf("n1: status %d: %s", w.Code, w.Body)
	}
	claim, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, claimName(net.ParseIP("192.0.2.10")), metav1.GetOptions{})
	if err != nil || *claim.Spec.HolderIdentity != "n1" || len(claim.OwnerReferences) != 1 || claim.OwnerReferences[0].Name != PasswordSecret("n1") {
		t.Fatalf("n1's claim: %+v %v", claim, err)
	}

	// n2, same address, before n1 has registered: refused, its name free.
	w := postJoin(t, s, request(t, "n2", other, "192.0.2.10"))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "given to node n1, which joined and has not registered") {
		t.Fatalf("n2 with n1's unregistered address: status %d: %s", w.Code, w.Body)
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret("n2"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused first join kept its password: %v", err)
	}

	// n1 moves to .11: .10 is free for n2.
	if w := postJoin(t, s, request(t, "n1", password, "192.0.2.11")); w.Code != http.StatusOK {
		t.Fatalf("n1 moved: status %d: %s", w.Code, w.Body)
	}
	if w := postJoin(t, s, request(t, "n2", other, "192.0.2.10")); w.Code != http.StatusOK {
		t.Fatalf("n2 after n1 moved: status %d: %s", w.Code, w.Body)
	}

	// n1 registers, then its kubelet reports .12 (no new join): its
	// claim on .11 is stale and n3 takes it.
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.11"}}}}
	if _, err := client.CoreV1().Nodes().Create(ctx, n1, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n3", machineC, "192.0.2.11")); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "belongs to node n1") {
		t.Fatalf("n3 with registered n1's address: status %d: %s", w.Code, w.Body)
	}
	n1.Status.Addresses[0].Address = "192.0.2.12"
	if _, err := client.CoreV1().Nodes().Update(ctx, n1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n3", machineC, "192.0.2.11")); w.Code != http.StatusOK {
		t.Fatalf("n3 with n1's former address: status %d: %s", w.Code, w.Body)
	}

	// n2's Node deleted (its password marked by the cleaner): n4 takes .10.
	pw, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, PasswordSecret("n2"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pw.Annotations = map[string]string{NodeDeletedAnnotation: "2026-12-07T10:00:00Z"}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, pw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := postJoin(t, s, request(t, "n4", machineD, "192.0.2.10")); w.Code != http.StatusOK {
		t.Fatalf("n4 with deleted n2's address: status %d: %s", w.Code, w.Body)
	}
	claims, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]string{}
	for _, c := range claims.Items {
		holders[c.Annotations[claimAddress]] = *c.Spec.HolderIdentity
	}
	if len(holders) != 2 || holders["192.0.2.10"] != "n4" || holders["192.0.2.11"] != "n3" {
		t.Errorf("claims at the end: %v", holders)
	}
}
