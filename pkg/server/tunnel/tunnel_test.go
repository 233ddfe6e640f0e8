package tunnel

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

func serverWithNodes(t *testing.T, nodes ...*corev1.Node) *Server {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{byAddress: nodeAddresses})
	for _, n := range nodes {
		if err := indexer.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Log: klog.Background(), nodes: corelisters.NewNodeLister(indexer), byAddress: indexer}
	s.Handler(nil)
	return s
}

func TestOwnerByAddressAndPodCIDR(t *testing.T) {
	s := serverWithNodes(t, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "edge1"},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{"10.42.3.0/24"}},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.20"}, {Type: corev1.NodeHostName, Address: "edge1"}}},
	})
	for host, want := range map[string]string{"192.168.1.20": "edge1", "edge1": "edge1", "10.42.3.77": "edge1", "10.42.4.1": "", "10.43.0.1": ""} {
		if got := s.owner(host); got != want {
			t.Errorf("owner(%s) = %q, want %q", host, got, want)
		}
	}
}

// TestConnectDialsDirectlyWithoutATunnel: the CONNECT proxy answers 200
// and carries bytes both ways to an address no tunnel owns.
func TestConnectDialsDirectlyWithoutATunnel(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("echo " + line))
	}()
	s := serverWithNodes(t)
	proxy := &http.Server{Handler: http.HandlerFunc(s.serveConnect)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go proxy.Serve(l)
	defer proxy.Shutdown(context.Background())

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := echo.Addr().String()
	conn.Write([]byte("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\nhello\n"))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != "echo hello\n" {
		t.Fatalf("through the proxy: %q %v", got, err)
	}
}
