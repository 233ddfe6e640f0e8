package server

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEtcdMemberActionForANode(t *testing.T) {
	now := metav1.Now()
	node := func(server, finalizer, deleting bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "s2", Labels: map[string]string{"kubernetes.io/os": "linux"}, Finalizers: []string{"other.example/keep"}}}
		if server {
			n.Labels[controlPlaneLabel] = "true"
		}
		if finalizer {
			n.Finalizers = append(n.Finalizers, EtcdMemberFinalizer)
		}
		if deleting {
			n.DeletionTimestamp = &now
		}
		return n
	}
	for _, tc := range []struct {
		name                        string
		server, finalizer, deleting bool
		want                        memberAction
	}{
		{"an agent's Node", false, false, false, memberNone},
		{"an agent's Node being deleted", false, false, true, memberNone},
		{"a server's Node, not held yet", true, false, false, memberHold},
		{"a server's Node, held", true, true, false, memberNone},
		{"a server's Node being deleted, held", true, true, true, memberRemove},
		{"a server's Node being deleted, not held", true, false, true, memberNone},
		{"a Node that lost its label, held, being deleted", false, true, true, memberRemove},
	} {
		if got := memberActionFor(node(tc.server, tc.finalizer, tc.deleting)); got != tc.want {
			t.Errorf("%s: action %d, want %d", tc.name, got, tc.want)
		}
	}
}
