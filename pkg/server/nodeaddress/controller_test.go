package nodeaddress

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cloudproviderapi "k8s.io/cloud-provider/api"

	"github.com/kubling/kubling/pkg/join"
)

func TestAddressesAddTheExternalIPs(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "edge1", Annotations: map[string]string{
			join.ExternalIPAnnotation:                      "203.0.113.7,2001:db8::7",
			cloudproviderapi.AnnotationAlphaProvidedIPAddr: "10.0.0.5",
		}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "10.0.0.4"}, // an earlier --node-ip
			{Type: corev1.NodeHostName, Address: "edge1.local"},
		}},
	}
	got, ok := Addresses(n)
	want := []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.5"},
		{Type: corev1.NodeExternalIP, Address: "203.0.113.7"},
		{Type: corev1.NodeExternalIP, Address: "2001:db8::7"},
		{Type: corev1.NodeHostName, Address: "edge1.local"},
	}
	if !ok || !apiequality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got %v %v, want %v", got, ok, want)
	}
	// Without the kubelet's annotation: the InternalIPs it set; without a
	// Hostname address: the node's name.
	delete(n.Annotations, cloudproviderapi.AnnotationAlphaProvidedIPAddr)
	n.Status.Addresses = n.Status.Addresses[:1]
	got, _ = Addresses(n)
	if got[0].Address != "10.0.0.4" || got[len(got)-1] != (corev1.NodeAddress{Type: corev1.NodeHostName, Address: "edge1"}) {
		t.Fatalf("got %v", got)
	}
}

func TestAddressesLeaveOtherNodesAlone(t *testing.T) {
	for _, ann := range []map[string]string{nil, {join.ExternalIPAnnotation: ""}, {join.ExternalIPAnnotation: "not-an-ip"}} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Annotations: ann}}
		if got, ok := Addresses(n); ok {
			t.Errorf("annotations %v: got %v, want the node left to its kubelet", ann, got)
		}
	}
}
