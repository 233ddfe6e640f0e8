package datastore

// The kine drivers kubling offers (--datastore-endpoint sqlite://,
// postgres://, mysql://); each registers its schemes with kine's driver
// registry. Only these are linked (kineServer.serve).
import (
	_ "github.com/k3s-io/kine/pkg/drivers/mysql"
	_ "github.com/k3s-io/kine/pkg/drivers/pgsql"
	_ "github.com/k3s-io/kine/pkg/drivers/sqlite"
)
