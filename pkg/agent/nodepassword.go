package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/fileutil"
)

// NodePassword returns this machine's node password, made on first use. The
// server ties the node name to it, so another machine cannot take the name.
func NodePassword(l datadir.Layout) (string, error) {
	path := l.NodePassword()
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) >= 16 {
		return strings.TrimSpace(string(data)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node password: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	password := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return password, fileutil.WriteAtomic(path, []byte(password+"\n"), 0o600)
}
