package serverjoin

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	genericrequest "k8s.io/apiserver/pkg/endpoints/request"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/join"
)

func postServerJoin(s *Service, u user.Info, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, join.ServerJoinPath, bytes.NewReader(body))
	if u != nil {
		r = r.WithContext(genericrequest.WithUser(r.Context(), u))
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// joiner is an agent's join token.
var joiner = &user.DefaultInfo{Name: "system:bootstrap:abcdef", Groups: []string{"system:bootstrappers", join.Group}}

// TestServerJoinTakesTheServerTokenOnly: an agent's join token (another
// bootstrap token in the join group) cannot join a server; the server
// token's request reaches the answer once checked.
func TestServerJoinTakesTheServerTokenOnly(t *testing.T) {
	s := &Service{TokenID: func() string { return "srvtok" }, Log: klog.Background()}
	var asked []join.ServerRequest
	s.answer = func(_ context.Context, req join.ServerRequest) (*join.ServerResponse, int, error) {
		asked = append(asked, req)
		return &join.ServerResponse{BootstrapData: []byte("sealed"), Etcd: join.EtcdCluster{InitialCluster: "a=https://10.0.0.1:2380", ClientURLs: []string{"https://10.0.0.1:2379"}}}, http.StatusOK, nil
	}
	server := &user.DefaultInfo{Name: "system:bootstrap:srvtok", Groups: []string{"system:bootstrappers", join.Group}}
	good, _ := json.Marshal(join.ServerRequest{NodeName: "s2", EtcdPeerURL: "https://10.0.0.2:2380"})
	for name, u := range map[string]user.Info{"no user": nil, "agent token": joiner, "admin": &user.DefaultInfo{Name: "admin", Groups: []string{"system:masters"}}} {
		if w := postServerJoin(s, u, good); w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403: %s", name, w.Code, w.Body)
		}
	}
	for name, body := range map[string]string{
		"malformed": "{", "bad name": `{"nodeName":"S_2","etcdPeerURL":"https://10.0.0.2:2380"}`,
		"no peer URL": `{"nodeName":"s2"}`, "plain http peer": `{"nodeName":"s2","etcdPeerURL":"http://10.0.0.2:2380"}`,
	} {
		if w := postServerJoin(s, server, []byte(body)); w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, w.Code, w.Body)
		}
	}
	if len(asked) != 0 {
		t.Fatalf("refused requests reached the answer: %v", asked)
	}
	w := postServerJoin(s, server, good)
	var resp join.ServerResponse
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &resp) != nil || string(resp.BootstrapData) != "sealed" {
		t.Fatalf("server token: status %d: %s", w.Code, w.Body)
	}
	if len(asked) != 1 || asked[0].NodeName != "s2" {
		t.Fatalf("the answer got %v", asked)
	}
	// The real answer: a cluster on an external datastore takes no servers.
	s.answer, s.Kind = nil, datastore.KindSQL
	if w := postServerJoin(s, server, good); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "external datastore") {
		t.Errorf("external datastore: status %d: %s", w.Code, w.Body)
	}
}
