package server

import (
	"strings"
	"testing"

	"github.com/kubling/kubling/pkg/datadir"
)

func TestEtcdBackendRefusesADataDirWithoutEtcd(t *testing.T) {
	l := datadir.New(t.TempDir())
	if _, err := EtcdBackend(l); err == nil || !strings.Contains(err.Error(), "holds no embedded etcd") {
		t.Fatalf("a data dir without etcd: %v", err)
	}
}
