package join

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubling/kubling/pkg/token"
)

// fakeServer serves /cacerts with the test server's own certificate as the
// "CA" (so TLS verifies against it) and a join endpoint that checks the
// bearer token.
func fakeServer(t *testing.T, wantBearer string) (*httptest.Server, []byte) {
	t.Helper()
	var ca []byte
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case CACertsPath:
			_, _ = w.Write(append(ca, '\n'))
		case JoinPath:
			if r.Header.Get("Authorization") != "Bearer "+wantBearer {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			var req Request
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.NodeName == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if req.NodeName == "taken" {
				w.WriteHeader(http.StatusConflict)
				_ = json.NewEncoder(w).Encode(ErrorBody{Message: `node name "taken" is already used by another machine`})
				return
			}
			resp := Response{Certificates: map[string][]byte{}, Cluster: Cluster{ClusterCIDR: "10.42.0.0/16"}}
			for _, c := range Credentials {
				resp.Certificates[c] = []byte("cert")
			}
			_ = json.NewEncoder(w).Encode(resp)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	ca = []byte(strings.TrimSpace(string(ca)))
	return srv, ca
}

func TestFetchCAAndPost(t *testing.T) {
	srv, ca := fakeServer(t, "abcdef.0123456789abcdef")
	u, err := ServerURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tok := token.Token{CAHash: token.CAHash(ca), Secret: "abcdef.0123456789abcdef"}
	got, err := FetchCA(context.Background(), u, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Post(context.Background(), u, got, "abcdef.0123456789abcdef", Request{NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Cluster.ClusterCIDR != "10.42.0.0/16" {
		t.Fatalf("cluster %+v", resp.Cluster)
	}

	_, err = Post(context.Background(), u, got, "abcdef.ffffffffffffffff", Request{NodeName: "n1"})
	if err == nil || !IsPermanent(err) || !IsAuthRefusal(err) || !strings.Contains(err.Error(), "rejected the token") {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = Post(context.Background(), u, got, "abcdef.0123456789abcdef", Request{NodeName: "taken"})
	if err == nil || !IsPermanent(err) || IsAuthRefusal(err) || !strings.Contains(err.Error(), "already used by another machine") {
		t.Fatalf("taken name: %v", err)
	}
}

func TestFetchCARefusesWrongCA(t *testing.T) {
	srv, _ := fakeServer(t, "x")
	u, _ := ServerURL(srv.URL)
	tok := token.Token{CAHash: strings.Repeat("ab", 32), Secret: "s"}
	_, err := FetchCA(context.Background(), u, tok, nil)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "another cluster CA") {
		t.Fatalf("wrong CA: %v", err)
	}
	if _, err := FetchCA(context.Background(), u, token.Token{Secret: "s"}, nil); err == nil || !IsPermanent(err) {
		t.Fatalf("token without hash: %v", err)
	}
}

func TestFetchCARefusesClockSkew(t *testing.T) {
	srv, ca := fakeServer(t, "x")
	u, _ := ServerURL(srv.URL)
	tok := token.Token{CAHash: token.CAHash(ca), Secret: "s"}
	late := func() time.Time { return time.Now().Add(-2 * time.Minute) }
	_, err := FetchCA(context.Background(), u, tok, late)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "clock") {
		t.Fatalf("skew: %v", err)
	}
	slightly := func() time.Time { return time.Now().Add(10 * time.Second) }
	if _, err := FetchCA(context.Background(), u, tok, slightly); err != nil {
		t.Fatalf("10s skew refused: %v", err)
	}
}

func TestUnreachableIsRetried(t *testing.T) {
	u, _ := url.Parse("https://127.0.0.1:1")
	_, err := FetchCA(context.Background(), u, token.Token{CAHash: strings.Repeat("ab", 32), Secret: "s"}, nil)
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "cannot reach the server") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestServerURL(t *testing.T) {
	u, err := ServerURL("https://10.0.0.1")
	if err != nil || u.Host != "10.0.0.1:6443" {
		t.Fatalf("%v %v", u, err)
	}
	for _, bad := range []string{"http://10.0.0.1:6443", "10.0.0.1:6443", "https://", "https://h:6443/api", "https://u:p@h:6443"} {
		if _, err := ServerURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
