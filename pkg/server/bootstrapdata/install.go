package bootstrapdata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/token"
)

// ErrOtherCluster is a datastore (or a data dir) whose cluster keys are
// another cluster's.
var ErrOtherCluster = errors.New("this datastore belongs to another cluster")

// Install gives the data dir l the cluster's keys: it opens the sealed
// bundle with the token given, writes the keys into the server's TLS folder
// and the token file, pinned to the CA bundle. It returns how many keys it
// wrote. A data dir that holds another cluster's CA is refused
// (ErrOtherCluster) before anything is written.
func Install(l datadir.Layout, blob []byte, given token.Token) (int, error) {
	files, err := Open(blob, given.Secret)
	if err != nil {
		return 0, err
	}
	// A data dir that has a CA already (a server join cut short) must have
	// the cluster's.
	p := pki.PKI{Dir: l.ServerTLS()}
	if have, err := os.ReadFile(p.Cert(pki.ServerCA)); err == nil && string(have) != string(files[filepath.Base(p.Cert(pki.ServerCA))]) {
		return 0, fmt.Errorf("%w: %s holds another cluster's CA; remove %s to join this one", ErrOtherCluster, l.ServerTLS(), l.ServerDir())
	}
	if err := Write(l.ServerTLS(), files); err != nil {
		return 0, fmt.Errorf("write the cluster keys: %w", err)
	}
	// The bundle agents pin, as the start computes it.
	caPEM, err := p.CABundle()
	if err != nil {
		return 0, err
	}
	if _, err := token.Ensure(l.Token(), &given, caPEM); err != nil {
		return 0, err
	}
	return len(files), nil
}
