package nodejoin

import (
	"bytes"
	"testing"

	"github.com/kubling/kubling/pkg/config"
)

// FuzzDecodeRequest: no join request body may panic the server, and one
// that is accepted has a name the apiserver takes and only parseable IPs.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"nodeName":"n1","nodePassword":"0123456789abcdef","addresses":["192.0.2.10"],"csrs":{"client-kubelet":"LS0t"}}`,
		`{"nodeName":"a..b","nodePassword":"0123456789abcdef","addresses":["192.0.2.10"]}`,
		`{"nodeName":"n1","nodePassword":"0123456789abcdef","addresses":["::1","fe80::1%eth0"]}`,
		`{"nodeName":"n1","nodePassword":"x","addresses":[]}`,
		`{"nodeName":null,"addresses":null,"csrs":null}`,
		`{"nodeName":"n1","nodePassword":"0123456789abcdef","addresses":["192.0.2.10"],"csrs":{"x":"not base64"}}`,
		`[]`, `null`, `"`, `{"nodeName":"` + string(bytes.Repeat([]byte("a"), 300)) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ips, err := DecodeRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		if !config.ValidNodeName(req.NodeName) || len(req.NodePassword) < 16 {
			t.Fatalf("accepted %q with password of %d characters", req.NodeName, len(req.NodePassword))
		}
		if len(ips) == 0 || len(ips) != len(req.Addresses) {
			t.Fatalf("accepted %d addresses as %d IPs", len(req.Addresses), len(ips))
		}
		for i, ip := range ips {
			if ip == nil {
				t.Fatalf("address %q accepted as no IP", req.Addresses[i])
			}
		}
	})
}
