package args

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apiserver/pkg/server/egressselector"
)

// TestEgressSelectorConfigLoads: the apiserver's own loader and validator
// accept the file, with the cluster's connections through the socket.
func TestEgressSelectorConfigLoads(t *testing.T) {
	b, err := EgressSelectorConfig("/var/lib/kubling/server/egress.sock")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "egress.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := egressselector.ReadEgressSelectorConfiguration(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if errs := egressselector.ValidateEgressSelectorConfiguration(cfg); len(errs) > 0 {
		t.Fatalf("%v\n%s", errs, b)
	}
	if len(cfg.EgressSelections) != 1 || cfg.EgressSelections[0].Name != "cluster" ||
		cfg.EgressSelections[0].Connection.Transport.UDS.UDSName != "/var/lib/kubling/server/egress.sock" {
		t.Fatalf("loaded %+v", cfg)
	}
}
