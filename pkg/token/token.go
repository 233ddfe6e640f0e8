// Package token handles the server's durable join token: one string that
// pins the cluster CA (its sha256) and carries a secret. The token file also
// marks which cluster a data dir belongs to.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"golang.org/x/crypto/argon2"

	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubling/kubling/pkg/fileutil"
)

// Prefix starts every full token; the version digit allows later formats.
const Prefix = "KL1"

// Token is a parsed join token. CAHash is empty for a bare secret.
type Token struct {
	CAHash string
	Secret string
}

// Parse accepts a full token (KL1<sha256-hex>::<secret>) or a bare secret.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("token is empty")
	}
	if rest, ok := strings.CutPrefix(s, Prefix); ok {
		hash, secret, found := strings.Cut(rest, "::")
		if !found || len(hash) != 64 || secret == "" {
			return Token{}, fmt.Errorf("token %q: want %s<64 hex digits>::<secret>", redact(s), Prefix)
		}
		if _, err := hex.DecodeString(hash); err != nil {
			return Token{}, fmt.Errorf("token %q: CA hash is not hex", redact(s))
		}
		return Token{CAHash: strings.ToLower(hash), Secret: secret}, nil
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return Token{}, errors.New("token secret must not contain spaces, control characters or colons")
	}
	return Token{Secret: s}, nil
}

// String is the full form (or the bare secret when no CA hash is known).
func (t Token) String() string {
	if t.CAHash == "" {
		return t.Secret
	}
	return Prefix + t.CAHash + "::" + t.Secret
}

// Bootstrap is the upstream bootstrap token ("id.secret") this join token
// authenticates with at the apiserver. A secret already in that form (from
// `kubling token create`) is used as it is; any other secret (the server's
// durable one, or a user's --token) maps to exactly one bootstrap token
// derived from it, so the server and its agents agree without sharing more.
//
// The id is stored in clear (the bootstrap token Secret's name, in every
// snapshot and external database), so the derivation is slow (Argon2id,
// derivation* below): a snapshot lets nobody test guesses at a secret a
// user chose at hash speed (it was SHA-256 until issue 24).
func (t Token) Bootstrap() (id, secret string) {
	if bootstraputil.IsValidBootstrapToken(t.Secret) {
		id, secret, _ = strings.Cut(t.Secret, ".")
		return id, secret
	}
	key := argon2.IDKey([]byte(t.Secret), []byte(derivationSalt), derivationTime, derivationMemoryKiB, derivationThreads, 11)
	h := hex.EncodeToString(key)
	return h[:6], h[6:22]
}

// The derivation's cost: about as slow per guess as opening the sealed
// cluster keys, at a quarter of their memory, since every agent pays it
// once per join (8 MiB, returned after).
const (
	derivationSalt      = "kubling-join-token-v2"
	derivationTime      = 3
	derivationMemoryKiB = 8 * 1024
	derivationThreads   = 1
)

// CAHash is the hex sha256 of a CA bundle.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a random secret.
func NewSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// CheckOwnership refuses a data dir whose token file belongs to another
// cluster than the token given (nil: none given). A given token the file
// has replaced (`kubling token rotate`, kept in <path>.previous) is the same
// cluster's: the stored one counts (Rotated says so). It reads only, so it
// can run before anything is written. It returns the stored token if there
// is one.
func CheckOwnership(path string, given *Token) (*Token, error) {
	stored, err := ReadFile(path)
	if err != nil || stored == nil || given == nil {
		return stored, err
	}
	if given.CAHash != "" && stored.CAHash != "" && given.CAHash != stored.CAHash {
		return nil, fmt.Errorf("data dir belongs to another cluster: its token (%s) pins another CA than --token; use that cluster's token or another --data-dir", path)
	}
	if subtle.ConstantTimeCompare([]byte(given.Secret), []byte(stored.Secret)) != 1 && !Rotated(path, *given) {
		return nil, fmt.Errorf("data dir belongs to another cluster: its token (%s) differs from --token; use that cluster's token or another --data-dir", path)
	}
	return stored, nil
}

// Rotated says whether t is one the token file at path has replaced.
func Rotated(path string, t Token) bool {
	data, err := os.ReadFile(path + ".previous")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if old, err := Parse(strings.TrimSpace(line)); err == nil && subtle.ConstantTimeCompare([]byte(old.Secret), []byte(t.Secret)) == 1 {
			return true
		}
	}
	return false
}

// ReadFile reads a token file; nil when there is none.
func ReadFile(path string) (*Token, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	stored, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("token file %s is damaged: %w", path, err)
	}
	return &stored, nil
}

// Ensure writes the token file on first start (from the given token's
// secret, or a new one; given may be nil) and returns the full token pinned
// to caPEM. An existing file keeps its secret.
func Ensure(path string, given *Token, caPEM []byte) (Token, error) {
	stored, err := CheckOwnership(path, given)
	if err != nil {
		return Token{}, err
	}
	hash := CAHash(caPEM)
	if stored != nil {
		if stored.CAHash != "" && stored.CAHash != hash {
			return Token{}, fmt.Errorf("token file %s pins another CA than the one in the data dir; the data dir is inconsistent", path)
		}
		t := Token{CAHash: hash, Secret: stored.Secret}
		if stored.CAHash == "" {
			return t, WriteFile(path, t)
		}
		return t, nil
	}
	secret := ""
	if given != nil {
		if given.CAHash != "" && given.CAHash != hash {
			return Token{}, errors.New("--token pins a CA other than this server's; for a new cluster give a bare secret")
		}
		secret = given.Secret
	} else if secret, err = NewSecret(); err != nil {
		return Token{}, err
	}
	t := Token{CAHash: hash, Secret: secret}
	return t, WriteFile(path, t)
}

// WriteFile writes t to the token file at path, whole or not at all, 0600.
func WriteFile(path string, t Token) error {
	return fileutil.WriteAtomic(path, []byte(t.String()+"\n"), 0o600)
}

func redact(s string) string {
	if i := strings.Index(s, "::"); i >= 0 {
		return s[:i+2] + "…"
	}
	return "…"
}
