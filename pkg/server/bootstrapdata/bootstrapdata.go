// Package bootstrapdata keeps the cluster's keys in its datastore, sealed
// with the join token, so that whoever holds a snapshot and the token can
// give the cluster back on a new machine (and, later, so that a joining
// server can take the cluster's keys).
//
// What is sealed: every CA's certificate and key, the service-account
// signing key, and the Secrets' encryption configuration — what cannot be
// made again without breaking every credential and every encrypted Secret.
// Leaf certificates are not: each server issues its own from the CAs.
//
// Threat model (docs/security.md, "Cluster keys in the datastore"): the
// datastore and its snapshots are readable by whoever runs them (a Postgres
// admin, a backup store); sealed, the keys there are worth nothing without
// the token's secret, which never enters the datastore. The key is derived
// from the secret with Argon2id (a random salt per seal) and the bundle
// sealed with XChaCha20-Poly1305, so a stolen snapshot means an offline
// guess per try at 32 MiB of memory, and a changed byte fails to open. A
// token's secret is 32 random characters when kubling makes it; a weak
// secret a user gives (at least 16 characters) is the weak point.
package bootstrapdata

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/server/pki"
)

// Key is where the sealed bundle lives in the datastore, outside the
// apiserver's /registry prefix.
const Key = "/kubling/bootstrap"

// Argon2id's cost, stored with each seal so that it can change later.
const (
	argonTime    = 2
	argonMemory  = 32 * 1024 // KiB
	argonThreads = 2
	version      = 1
)

// aad binds a sealed bundle to its use.
var aad = []byte("kubling bootstrap data v1")

// sealed is the stored form.
type sealed struct {
	Version   int    `json:"version"`
	Time      uint32 `json:"argon2Time"`
	MemoryKiB uint32 `json:"argon2MemoryKiB"`
	Threads   uint8  `json:"argon2Threads"`
	Salt      []byte `json:"salt"`
	Nonce     []byte `json:"nonce"`
	Box       []byte `json:"box"`
}

// Files are the sealed files by name, as in the server's TLS folder.
type Files map[string][]byte

// Names are the files of dir that are sealed: each CA's certificate and key
// that is there, the service-account key and the encryption configuration.
func Names(dir, encryptionConfig string) []string {
	var names []string
	p := pki.PKI{Dir: dir}
	for _, ca := range (pki.Options{Etcd: true}).Authorities() {
		names = append(names, filepath.Base(p.Cert(ca)), filepath.Base(p.Key(ca)))
	}
	names = append(names, filepath.Base(p.ServiceAccountKeyFile()))
	if filepath.Dir(encryptionConfig) == filepath.Clean(dir) {
		names = append(names, filepath.Base(encryptionConfig))
	}
	return names
}

// Collect reads the files of dir that are sealed; those absent (the etcd
// CA on SQLite) are left out.
func Collect(dir string, names []string) (Files, error) {
	files := Files{}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		files[n] = data
	}
	return files, nil
}

// Write puts files into dir (made if missing): keys and the encryption
// configuration root's alone, certificates readable.
func Write(dir string, files Files) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if n != filepath.Base(n) || n == "." || n == ".." {
			return fmt.Errorf("bootstrap data names %q, not a file name", n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		mode := os.FileMode(0o600)
		if filepath.Ext(n) == ".crt" {
			mode = 0o644
		}
		if err := fileutil.WriteAtomic(filepath.Join(dir, n), files[n], mode); err != nil {
			return err
		}
	}
	return nil
}

func key(secret string, salt []byte, s sealed) []byte {
	return argon2.IDKey([]byte(secret), salt, s.Time, s.MemoryKiB, s.Threads, chacha20poly1305.KeySize)
}

// Seal seals files with a key derived from the token's secret.
func Seal(files Files, secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("seal bootstrap data: no token secret")
	}
	plain, err := json.Marshal(files)
	if err != nil {
		return nil, err
	}
	s := sealed{Version: version, Time: argonTime, MemoryKiB: argonMemory, Threads: argonThreads,
		Salt: make([]byte, 16), Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
	if _, err := rand.Read(s.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(s.Nonce); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key(secret, s.Salt, s))
	if err != nil {
		return nil, err
	}
	s.Box = aead.Seal(nil, s.Nonce, plain, aad)
	return json.Marshal(s)
}

// plausible bounds what a stored seal may ask of Argon2id on both ends: 0
// passes or threads make argon2 panic, and a bundle written by anyone who
// can write the datastore must not make a server take gigabytes or
// minutes. The bounds leave room to raise kubling's own cost later.
func plausible(s sealed) bool {
	return s.Time >= 1 && s.Time <= 16 &&
		s.MemoryKiB >= 8*1024 && s.MemoryKiB <= 256*1024 &&
		s.Threads >= 1 && s.Threads <= 16 &&
		len(s.Salt) >= 16 && len(s.Salt) <= 64 &&
		len(s.Nonce) == chacha20poly1305.NonceSizeX
}

// ErrWrongToken says the bundle does not open with the secret given: the
// token of another cluster, or a bundle that was changed.
var ErrWrongToken = errors.New("the token does not open the cluster keys stored in the datastore (another cluster's token?)")

// Open opens a sealed bundle with the token's secret.
func Open(blob []byte, secret string) (Files, error) {
	var s sealed
	if err := json.Unmarshal(blob, &s); err != nil {
		return nil, fmt.Errorf("bootstrap data in the datastore is unreadable: %w", err)
	}
	if s.Version != version {
		return nil, fmt.Errorf("bootstrap data in the datastore is of version %d; this kubling reads version %d", s.Version, version)
	}
	if !plausible(s) {
		return nil, errors.New("bootstrap data in the datastore has implausible parameters")
	}
	aead, err := chacha20poly1305.NewX(key(secret, s.Salt, s))
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, s.Nonce, s.Box, aad)
	if err != nil {
		return nil, ErrWrongToken
	}
	var files Files
	if err := json.Unmarshal(plain, &files); err != nil {
		return nil, fmt.Errorf("bootstrap data: %w", err)
	}
	return files, nil
}

// Same says whether two bundles hold the same files.
func Same(a, b Files) bool {
	if len(a) != len(b) {
		return false
	}
	for n, data := range a {
		if other, ok := b[n]; !ok || string(other) != string(data) {
			return false
		}
	}
	return true
}
