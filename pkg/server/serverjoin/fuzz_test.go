package serverjoin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/config"
	"github.com/kubling/kubling/pkg/join"
)

// FuzzServeJoinRequest: no server join request body panics the handler;
// only a request with a valid node name and an https peer URL reaches the
// answer, which compares its cluster settings with the server's.
func FuzzServeJoinRequest(f *testing.F) {
	good, _ := json.Marshal(join.ServerRequest{NodeName: "s2", EtcdPeerURL: "https://10.0.0.2:2380"})
	for _, seed := range [][]byte{good, []byte("{"), []byte(`{"nodeName":"S_2"}`), []byte(`{"nodeName":"s2","etcdPeerURL":"https://[::1]:2380","cluster":{"clusterCIDR":"10.42.0.0/16"}}`), nil} {
		f.Add(seed)
	}
	cluster := config.Cluster{ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16")}
	server := &user.DefaultInfo{Name: "system:bootstrap:srvtok", Groups: []string{"system:bootstrappers", join.Group}}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := &Service{TokenID: func() string { return "srvtok" }, Cluster: cluster, Log: klog.Background()}
		s.answer = func(_ context.Context, req join.ServerRequest) (*join.ServerResponse, int, error) {
			if !config.ValidNodeName(req.NodeName) {
				t.Fatalf("an invalid node name reached the answer: %q", req.NodeName)
			}
			if u, err := url.Parse(req.EtcdPeerURL); err != nil || u.Scheme != "https" {
				t.Fatalf("a bad peer URL reached the answer: %q", req.EtcdPeerURL)
			}
			if err := s.Cluster.CheckSame(req.Cluster); err != nil {
				return nil, http.StatusConflict, err
			}
			return &join.ServerResponse{}, http.StatusOK, nil
		}
		w := postServerJoin(s, server, body)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusConflict:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
