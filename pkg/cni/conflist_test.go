package cni

import (
	"encoding/json"
	"testing"
)

func TestConflist(t *testing.T) {
	out, err := Conflist("10.42.3.0/24", "10.42.0.0/16", 1450, "/var/lib/kubling/agent/cni", false)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type string `json:"type"`
			MTU  int    `json:"mtu"`
			IPAM struct {
				Ranges  [][]struct{ Subnet string } `json:"ranges"`
				Routes  []struct{ Dst string }      `json:"routes"`
				DataDir string                      `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 || c.Plugins[0].Type != "bridge" || c.Plugins[1].Type != "portmap" || c.Plugins[2].Type != "bandwidth" {
		t.Fatalf("chain %+v", c.Plugins)
	}
	b := c.Plugins[0]
	if b.MTU != 1450 || b.IPAM.Ranges[0][0].Subnet != "10.42.3.0/24" || b.IPAM.Routes[0].Dst != "10.42.0.0/16" || b.IPAM.DataDir != "/var/lib/kubling/agent/cni" {
		t.Fatalf("bridge %+v", b)
	}
	for _, bad := range [][2]string{{"10.99.0.0/24", "10.42.0.0/16"}, {"x", "10.42.0.0/16"}, {"10.42.1.0/24", "y"}} {
		if _, err := Conflist(bad[0], bad[1], 1450, "/x", false); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
