package flannel

import (
	"encoding/json"
	"testing"
)

func TestNetConf(t *testing.T) {
	b, err := NetConf("10.42.0.0/16", "vxlan")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Network string
		Backend struct{ Type string }
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Network != "10.42.0.0/16" || c.Backend.Type != "vxlan" {
		t.Fatalf("%s %v", b, err)
	}
	if _, err := NetConf("nope", "vxlan"); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}
