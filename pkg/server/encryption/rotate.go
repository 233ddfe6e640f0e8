package encryption

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"
)

// A key rotation moves the configuration kubling manages (one secretbox
// provider, then identity) through three shapes, and the file itself is the
// state: nothing else needs to survive a crash. Keys are named
// kubling-<UTC time>, a new key always later than the keys before it, so
// with two keys their order tells the stage.
//
//	StageIdle      [old]       nothing in progress
//	StagePrepared  [old, new]  new decrypts only: every apiserver must know it before anything is encrypted with it
//	StageRotated   [new, old]  new encrypts; old still decrypts until every Secret is rewritten
//
// and back to StageIdle with [new]. Every shape holds every key that a
// Secret written under the shape before it can need, and never zero keys.
type Stage int

const (
	StageIdle Stage = iota
	StagePrepared
	StageRotated
)

func (s Stage) String() string {
	switch s {
	case StageIdle:
		return "none in progress"
	case StagePrepared:
		return "unfinished: step 1 of 4 done (new key added for decryption)"
	case StageRotated:
		return "unfinished: step 2 of 4 done (new key encrypts; Secrets not all rewritten, old key kept)"
	}
	return fmt.Sprintf("stage %d", int(s))
}

const (
	keyPrefix     = "kubling-"
	keyTimeLayout = "20060102T150405Z"
)

// newKey makes a random 32-byte secretbox key named for t.
func newKey(random io.Reader, t time.Time) (apiserverv1.Key, error) {
	secret := make([]byte, 32)
	if _, err := io.ReadFull(random, secret); err != nil {
		return apiserverv1.Key{}, fmt.Errorf("make an encryption key: %w", err)
	}
	return apiserverv1.Key{Name: keyPrefix + t.UTC().Format(keyTimeLayout), Secret: base64.StdEncoding.EncodeToString(secret)}, nil
}

// keyTime is when a kubling key was made, from its name.
func keyTime(name string) (time.Time, error) {
	ts, ok := strings.CutPrefix(name, keyPrefix)
	if !ok {
		return time.Time{}, fmt.Errorf("key %q is not named %s<time>", name, keyPrefix)
	}
	t, err := time.Parse(keyTimeLayout, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("key %q is not named %s<time>", name, keyPrefix)
	}
	return t, nil
}

// managed is a configuration in a shape kubling makes, with its stage.
type managed struct {
	cfg   *apiserverv1.EncryptionConfiguration
	stage Stage
}

// keys are the secretbox keys, the one that encrypts first.
func (m *managed) keys() []apiserverv1.Key {
	return m.cfg.Resources[0].Providers[0].Secretbox.Keys
}

func (m *managed) setKeys(keys []apiserverv1.Key) {
	m.cfg.Resources[0].Providers[0].Secretbox.Keys = keys
}

// errNotManaged marks a configuration kubling did not write (a KMS
// provider, other resources, a hand-made key): its keys are the user's to
// rotate.
var errNotManaged = errors.New("not an encryption configuration kubling manages")

// parseManaged reads a configuration and refuses one kubling did not make.
func parseManaged(data []byte) (*managed, error) {
	cfg, err := readEncryptionConfig(data)
	if err != nil {
		return nil, err
	}
	notManaged := func(why string, a ...any) error {
		return fmt.Errorf("%w (%s); rotate its keys by hand", errNotManaged, fmt.Sprintf(why, a...))
	}
	if len(cfg.Resources) != 1 || len(cfg.Resources[0].Resources) != 1 || cfg.Resources[0].Resources[0] != "secrets" {
		return nil, notManaged("it covers more than secrets")
	}
	providers := cfg.Resources[0].Providers
	if len(providers) != 2 || providers[0].Secretbox == nil || providers[1].Identity == nil {
		return nil, notManaged("providers are not secretbox then identity: %s", providerNames(providers))
	}
	keys := providers[0].Secretbox.Keys
	if len(keys) == 0 || len(keys) > 2 {
		return nil, notManaged("%d secretbox keys", len(keys))
	}
	var times []time.Time
	for _, k := range keys {
		t, err := keyTime(k.Name)
		if err != nil {
			return nil, notManaged("%v", err)
		}
		if raw, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(raw) != 32 {
			return nil, notManaged("key %s is not 32 bytes of base64", k.Name) // never the secret itself
		}
		times = append(times, t)
	}
	m := &managed{cfg: cfg}
	if len(keys) == 2 {
		switch {
		case times[1].After(times[0]):
			m.stage = StagePrepared
		case times[0].After(times[1]):
			m.stage = StageRotated
		default:
			return nil, notManaged("keys %s and %s are of the same time", keys[0].Name, keys[1].Name)
		}
	}
	return m, nil
}

func providerNames(ps []apiserverv1.ProviderConfiguration) string {
	var names []string
	for _, p := range ps {
		switch {
		case p.Secretbox != nil:
			names = append(names, "secretbox")
		case p.AESCBC != nil:
			names = append(names, "aescbc")
		case p.AESGCM != nil:
			names = append(names, "aesgcm")
		case p.KMS != nil:
			names = append(names, "kms")
		case p.Identity != nil:
			names = append(names, "identity")
		default:
			names = append(names, "unknown")
		}
	}
	return strings.Join(names, ", ")
}

// advance returns the configuration of the next stage. From StageRotated
// the caller must first have rewritten every Secret with the active key:
// the old key is dropped.
func (m *managed) advance(random io.Reader, now time.Time) (*managed, error) {
	keys := m.keys()
	var next []apiserverv1.Key
	switch m.stage {
	case StageIdle:
		t, _ := keyTime(keys[0].Name)
		now = now.UTC().Truncate(time.Second) // names have whole seconds
		if !now.After(t) {
			now = t.Add(time.Second) // a clock behind the old key's time: still later
		}
		k, err := newKey(random, now)
		if err != nil {
			return nil, err
		}
		next = []apiserverv1.Key{keys[0], k}
	case StagePrepared:
		next = []apiserverv1.Key{keys[1], keys[0]}
	case StageRotated:
		next = []apiserverv1.Key{keys[0]}
	default:
		return nil, fmt.Errorf("unknown rotation stage %d", m.stage)
	}
	cfg := m.cfg.DeepCopy()
	out := &managed{cfg: cfg, stage: (m.stage + 1) % 3}
	out.setKeys(next)
	return out, nil
}

func (m *managed) marshal() ([]byte, error) {
	return yaml.Marshal(m.cfg)
}

// contentHash is how the apiserver names a configuration file's content in
// its metrics (apiserver_encryption_config_controller_last_config_info).
func contentHash(data []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(data))
}

// ContentHash names a configuration's content as the apiservers report the
// one they have loaded.
func ContentHash(data []byte) string { return contentHash(data) }

// Newer says whether configuration a is a later step of kubling's key
// rotations than b, so that a server holding b must take a: a newer newest
// key, or the same newest key further on (added, then encrypting, then
// alone). False when either is not a configuration kubling manages: those
// are the user's, and never replaced.
func Newer(a, b []byte) bool {
	ma, err := parseManaged(a)
	if err != nil {
		return false
	}
	mb, err := parseManaged(b)
	if err != nil {
		return false
	}
	ta, ra := ma.progress()
	tb, rb := mb.progress()
	return ta.After(tb) || (ta.Equal(tb) && ra > rb)
}

// progress places m in the rotations: the time of its newest key and how
// far that key has come (0 decrypts only, 1 encrypts beside the old key,
// 2 alone).
func (m *managed) progress() (time.Time, int) {
	var newest time.Time
	for _, k := range m.keys() {
		if t, _ := keyTime(k.Name); t.After(newest) {
			newest = t
		}
	}
	switch m.stage {
	case StagePrepared:
		return newest, 0
	case StageRotated:
		return newest, 1
	}
	return newest, 2
}
