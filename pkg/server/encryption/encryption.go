// Package encryption keeps the apiserver's EncryptionConfiguration.
//
// Secrets are encrypted at rest by default (K3s: opt-in): the apiserver
// writes every Secret through secretbox (XSalsa20-Poly1305) with a key made
// on the first start and kept beside the cluster CAs. identity comes last,
// so Secrets written before encryption was on stay readable (and are
// encrypted when next written). RotateKeys replaces the key on a running
// server without losing a Secret (rotate.go, rotator.go).
package encryption

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubling/kubling/pkg/fileutil"
)

// Ensure writes the apiserver's EncryptionConfiguration on
// first start and keeps it afterwards: losing its key would lose every
// Secret, so an existing file is never replaced here, only checked (only
// RotateKeys changes it, keeping every key a stored Secret needs).
func Ensure(path string) error {
	if data, err := os.ReadFile(path); err == nil {
		if _, err := readEncryptionConfig(data); err != nil {
			return fmt.Errorf("secrets encryption configuration %s: %w", path, err)
		}
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("secrets encryption configuration: %w", err)
	}
	key, err := newKey(rand.Reader, time.Now())
	if err != nil {
		return err
	}
	cfg := apiserverv1.EncryptionConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiserver.config.k8s.io/v1", Kind: "EncryptionConfiguration"},
		Resources: []apiserverv1.ResourceConfiguration{{
			Resources: []string{"secrets"},
			Providers: []apiserverv1.ProviderConfiguration{
				{Secretbox: &apiserverv1.SecretboxConfiguration{Keys: []apiserverv1.Key{key}}},
				{Identity: &apiserverv1.IdentityConfiguration{}},
			},
		}},
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fileutil.WriteAtomic(path, data, 0o600)
}

func readEncryptionConfig(data []byte) (*apiserverv1.EncryptionConfiguration, error) {
	cfg := &apiserverv1.EncryptionConfiguration{}
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return nil, err
	}
	if len(cfg.Resources) == 0 || len(cfg.Resources[0].Providers) == 0 {
		return nil, errors.New("no providers")
	}
	return cfg, nil
}

// Status describes how Secrets are encrypted, from the configuration file,
// without a key's secret.
type Status struct {
	Enabled   bool
	Provider  string   // the provider that encrypts writes
	ActiveKey string   // the key that encrypts writes
	Keys      []string // every key that decrypts, active first
	// Rotation is the unfinished key rotation's stage (StageIdle: none, or
	// a configuration kubling does not manage).
	Rotation Stage
}

// Read reads the encryption configuration at path.
func Read(path string) (Status, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Status{}, fmt.Errorf("read %s (is this a server's data dir?): %w", path, err)
	}
	cfg, err := readEncryptionConfig(data)
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", path, err)
	}
	var st Status
	for _, p := range cfg.Resources[0].Providers {
		var keys []apiserverv1.Key
		name := ""
		switch {
		case p.Secretbox != nil:
			name, keys = "secretbox", p.Secretbox.Keys
		case p.AESCBC != nil:
			name, keys = "aescbc", p.AESCBC.Keys
		case p.AESGCM != nil:
			name, keys = "aesgcm", p.AESGCM.Keys
		case p.Identity != nil:
			name = "identity"
		default:
			name = "kms"
		}
		if st.Provider == "" {
			st.Provider, st.Enabled = name, name != "identity"
			if len(keys) > 0 {
				st.ActiveKey = keys[0].Name
			}
		}
		for _, k := range keys {
			st.Keys = append(st.Keys, k.Name)
		}
	}
	if m, err := parseManaged(data); err == nil {
		st.Rotation = m.stage
	}
	return st, nil
}
