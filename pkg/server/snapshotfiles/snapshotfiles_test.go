package snapshotfiles

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/snapshot"
)

func TestObject(t *testing.T) {
	f := snapshot.File{Name: "scheduled-node-1-1800000000.zst", Path: "/var/lib/kubling/server/db/snapshots/scheduled-node-1-1800000000.zst",
		Size: 4096, Created: time.Unix(1_800_000_000, 0), Info: datastore.SnapshotInfo{Kind: datastore.KindEtcd, Compressed: true}}
	o := Object(f, "node-1")
	if o.GetName() != f.Name || len(validation.IsDNS1123Subdomain(o.GetName())) > 0 || o.GetLabels()[NodeLabel] != "node-1" {
		t.Fatalf("object %s labels %v", o.GetName(), o.GetLabels())
	}
	spec := o.Object["spec"].(map[string]any)
	if spec["kind"] != "etcd+zstd" || spec["size"] != int64(4096) || spec["createdAt"] != "2027-01-15T08:00:00Z" || spec["path"] != f.Path {
		t.Fatalf("spec %v", spec)
	}
}

func TestCRDParses(t *testing.T) {
	var m map[string]any
	if err := yaml.UnmarshalStrict(crd, &m); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "CustomResourceDefinition" {
		t.Fatalf("kind %v", m["kind"])
	}
}
