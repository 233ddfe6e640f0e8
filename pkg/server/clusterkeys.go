package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubling/kubling/pkg/component"
	"github.com/kubling/kubling/pkg/datadir"
	"github.com/kubling/kubling/pkg/datastore"
	"github.com/kubling/kubling/pkg/fileutil"
	"github.com/kubling/kubling/pkg/server/bootstrapdata"
	"github.com/kubling/kubling/pkg/server/encryption"
	"github.com/kubling/kubling/pkg/server/pki"
	"github.com/kubling/kubling/pkg/token"
)

// clusterKeysInterval is how often a running server compares its keys with
// the sealed copy in the datastore: a rotate-keys step waits for it, on
// this server and then on every other.
const clusterKeysInterval = 3 * time.Second

// clusterKeys keeps the cluster's keys sealed in the datastore
// (pkg/server/bootstrapdata) and this server's files in step, at start and
// while the server runs:
//   - a file that changed here (a rotate-keys step, a rotated token) is
//     sealed again at once, over the revision it read (compare-and-swap):
//     a snapshot taken at any moment opens with the current token and
//     holds every key its Secrets need;
//   - an encryption configuration that is further on in kubling's key
//     rotations in the datastore (rotate-keys on another server) replaces
//     this server's file, which its apiserver then loads by itself.
//
// A datastore whose keys do not open with this server's token, or whose CAs
// differ from this data dir's, is another cluster's (ErrOtherCluster).
type clusterKeys struct {
	kv  *datastore.KV
	l   datadir.Layout
	log klog.Logger

	// What the last round saw, to skip rounds where nothing changed
	// (opening the seal costs Argon2's 32 MiB).
	seenRevision int64
	seenLocal    [sha256.Size]byte
	lastErr      string
}

// errLostRace: another server stored its keys at the same moment.
var errLostRace = errors.New("another server stored the cluster keys at the same moment; give both the same --token, or start this one again to take them")

// storeBootstrapData settles the cluster's keys with the datastore before
// the apiserver starts (sync), and returns what keeps them settled while it
// runs.
func storeBootstrapData(ctx context.Context, b datastore.Backend, l datadir.Layout, log klog.Logger) (component.Component, error) {
	kv, err := datastore.OpenKV(ctx, b)
	if err != nil {
		return nil, err
	}
	k := &clusterKeys{kv: kv, l: l, log: log}
	// A write lost to another server's: read theirs and settle again.
	raced := false
	for try := 0; ; try++ {
		creating, err := k.sync(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, errLostRace) && try < 5 {
			// Two servers started at once on an empty external datastore:
			// the other created the keys. This one's new CAs differ from
			// them (ErrOtherCluster, with errLostRace): the start takes
			// the stored keys instead (start.adoptAfterRace).
			raced = raced || creating
			continue
		}
		kv.Close()
		if raced {
			err = fmt.Errorf("%w (%w)", err, errLostRace)
		}
		return nil, err
	}
	return k.component(), nil
}

// component runs sync every clusterKeysInterval and closes the datastore
// client when stopped.
func (k *clusterKeys) component() component.Component {
	return &closing{Periodic: component.NewPeriodic("cluster-keys", clusterKeysInterval, clusterKeysInterval,
		func(ctx context.Context) error {
			_, err := k.sync(ctx)
			if errors.Is(err, errLostRace) {
				return nil // another server wrote meanwhile: the next round reads it
			}
			if err == nil {
				k.lastErr = ""
			}
			return err
		}, k.report), close: k.kv.Close}
}

// report logs a failed round once per reason: the next round tries again.
func (k *clusterKeys) report(err error) {
	if err.Error() == k.lastErr {
		return
	}
	k.lastErr = err.Error()
	if errors.Is(err, bootstrapdata.ErrOtherCluster) {
		err = fmt.Errorf("%w (was the token rotated on another server? copy its <data-dir>/server/token here and restart)", err)
	}
	k.log.Error(err, "Keep the cluster keys in the datastore up to date; trying again", "retryIn", clusterKeysInterval)
}

// sync is one round; creating says it tried to create the stored copy.
func (k *clusterKeys) sync(ctx context.Context) (creating bool, err error) {
	l := k.l
	current, err := token.ReadFile(l.Token())
	if err != nil {
		return false, err
	}
	if current == nil {
		return false, fmt.Errorf("no token at %s", l.Token())
	}
	names := bootstrapdata.Names(l.ServerTLS(), l.EncryptionConfig())
	local, err := bootstrapdata.Collect(l.ServerTLS(), names)
	if err != nil {
		return false, fmt.Errorf("cluster keys: %w", err)
	}
	blob, revision, err := k.kv.Get(ctx, bootstrapdata.Key)
	if err != nil {
		return false, err
	}
	digest := digestFiles(local, current.Secret)
	if revision != 0 && revision == k.seenRevision && digest == k.seenLocal {
		return false, nil
	}
	encryptionName := filepath.Base(l.EncryptionConfig())
	opened := ""
	var rotated *token.Token // the token rotated elsewhere, once followed
	if revision != 0 {
		stored, openedWith, err := openStored(blob, current.Secret, previousSecrets(l))
		if errors.Is(err, bootstrapdata.ErrWrongToken) {
			// The token rotated on another server: follow its records.
			next, ferr := k.followRotations(ctx, blob, current.Secret)
			if ferr != nil {
				return false, ferr
			}
			if next != "" {
				rotated = &token.Token{CAHash: current.CAHash, Secret: next}
				stored, openedWith, err = openStored(blob, next, nil)
			}
		}
		if err != nil {
			return false, fmt.Errorf("%w: %w", bootstrapdata.ErrOtherCluster, err)
		}
		opened = openedWith
		for _, ca := range (pki.Options{Etcd: true}).Authorities() {
			name := filepath.Base(pki.PKI{Dir: l.ServerTLS()}.Cert(ca))
			if have, ok := stored[name]; ok && local[name] != nil && string(have) != string(local[name]) {
				return false, fmt.Errorf("%w: its %s differs from %s", bootstrapdata.ErrOtherCluster, name, filepath.Join(l.ServerTLS(), name))
			}
		}
		if rotated != nil {
			// This cluster's keys, under the token rotated elsewhere.
			if err := k.adoptToken(*current, rotated.Secret); err != nil {
				return false, err
			}
			current = rotated
			digest = digestFiles(local, current.Secret)
		}
		// Rotated on another server: take its step.
		if theirs, ok := stored[encryptionName]; ok && encryption.Newer(theirs, local[encryptionName]) {
			if err := fileutil.WriteAtomic(l.EncryptionConfig(), theirs, 0o600); err != nil {
				return false, fmt.Errorf("take the datastore's encryption keys: %w", err)
			}
			local[encryptionName] = theirs
			digest = digestFiles(local, current.Secret)
			k.log.Info("Took the Secrets' encryption keys from the datastore (a rotation on another server); the apiserver loads them by itself", "file", l.EncryptionConfig())
		}
		if opened == current.Secret && bootstrapdata.Same(stored, local) {
			if err := k.recordSealed(local[encryptionName]); err != nil {
				return false, err
			}
			k.seenRevision, k.seenLocal = revision, digest
			return false, nil
		}
	}
	if opened != "" && opened != current.Secret {
		// Sealed with a token rotated here (kubling token rotate): the
		// other servers, holding the old one, learn the new one from this
		// record before the keys move to it.
		if err := k.recordRotation(ctx, opened, current.Secret, time.Now()); err != nil {
			return false, err
		}
	}
	sealed, err := bootstrapdata.Seal(local, current.Secret)
	if err != nil {
		return false, err
	}
	swapped, err := k.kv.Swap(ctx, bootstrapdata.Key, sealed, revision)
	if err != nil {
		return revision == 0, err
	}
	if !swapped {
		k.seenRevision = 0
		return revision == 0, errLostRace
	}
	if err := k.recordSealed(local[encryptionName]); err != nil {
		return false, err
	}
	// The next round reads the new revision back once.
	k.seenRevision = 0
	k.log.Info("Stored the cluster keys in the datastore, sealed with the token", "files", len(local))
	return false, nil
}

// rotationsPrefix keeps, per server-token rotation, the new secret sealed
// with the one it replaced: a server still holding the old token learns the
// new one there, and only a holder of the old token can (who could open
// the keys sealed with it anyway). The newest keepRotations are kept: a
// server stopped through more rotations needs the token copied to it.
const (
	rotationsPrefix = "/kubling/token-rotations/"
	keepRotations   = 8
)

// recordRotation records that from was replaced by to.
func (k *clusterKeys) recordRotation(ctx context.Context, from, to string, now time.Time) error {
	sealed, err := bootstrapdata.Seal(bootstrapdata.Files{"token": []byte(to)}, from)
	if err != nil {
		return err
	}
	if _, err := k.kv.Swap(ctx, fmt.Sprintf("%s%020d", rotationsPrefix, now.UnixNano()), sealed, 0); err != nil {
		return fmt.Errorf("record the token rotation: %w", err)
	}
	entries, err := k.kv.List(ctx, rotationsPrefix)
	if err != nil {
		return err
	}
	for len(entries) > keepRotations {
		if err := k.kv.Delete(ctx, entries[0].Key, entries[0].Revision); err != nil {
			return err
		}
		entries = entries[1:]
	}
	return nil
}

// followRotations finds the secret that opens blob by following the
// rotation records from secret, newest record first at each hop; "" when
// none leads there.
func (k *clusterKeys) followRotations(ctx context.Context, blob []byte, secret string) (string, error) {
	entries, err := k.kv.List(ctx, rotationsPrefix)
	if err != nil {
		return "", err
	}
	seen := map[string]bool{secret: true}
	for range entries {
		next := ""
		for i := len(entries) - 1; i >= 0; i-- {
			if files, err := bootstrapdata.Open(entries[i].Value, secret); err == nil {
				next = string(files["token"])
				break
			}
		}
		if next == "" || seen[next] {
			return "", nil
		}
		if _, err := bootstrapdata.Open(blob, next); err == nil {
			return next, nil
		}
		seen[next], secret = true, next
	}
	return "", nil
}

// adoptToken makes next this server's token, keeping the one it replaces
// with the rotated ones (a --token still naming it is accepted).
func (k *clusterKeys) adoptToken(current token.Token, next string) error {
	if err := appendLine(k.l.PreviousTokens(), current.String()); err != nil {
		return fmt.Errorf("keep the rotated token: %w", err)
	}
	if err := token.WriteFile(k.l.Token(), token.Token{CAHash: current.CAHash, Secret: next}); err != nil {
		return fmt.Errorf("write the rotated token: %w", err)
	}
	k.log.Info("The server token was rotated on another server; this server's token file now holds the new one", "file", k.l.Token())
	return nil
}

// openStored opens the sealed copy with the current token's secret or else
// with one rotated out (kubling token rotate, not yet sealed again); opened
// is the secret that opened it.
func openStored(blob []byte, current string, previous []string) (files bootstrapdata.Files, opened string, err error) {
	for _, secret := range append([]string{current}, previous...) {
		files, err = bootstrapdata.Open(blob, secret)
		if !errors.Is(err, bootstrapdata.ErrWrongToken) {
			return files, secret, err
		}
	}
	return nil, "", err
}

// recordSealed writes the content hash of the encryption configuration the
// datastore now holds (rotate-keys waits for it), when it changed.
func (k *clusterKeys) recordSealed(config []byte) error {
	want := encryption.ContentHash(config) + "\n"
	if have, err := os.ReadFile(k.l.SealedEncryption()); err == nil && string(have) == want {
		return nil
	}
	return fileutil.WriteAtomic(k.l.SealedEncryption(), []byte(want), 0o600)
}

// digestFiles sums the files and the secret they are to be sealed with.
func digestFiles(files bootstrapdata.Files, secret string) [sha256.Size]byte {
	h := sha256.New()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
		h.Write(files[n])
	}
	h.Write([]byte(secret))
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// previousSecrets are the secrets of the tokens rotated out, newest first.
func previousSecrets(l datadir.Layout) []string {
	data, err := os.ReadFile(l.PreviousTokens())
	if err != nil {
		return nil
	}
	var secrets []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if t, err := token.Parse(strings.TrimSpace(line)); err == nil {
			secrets = append([]string{t.Secret}, secrets...)
		}
	}
	return secrets
}

// closing is a component that closes something after it stops.
type closing struct {
	*component.Periodic
	close func() error
}

func (c *closing) Stop() error {
	return errors.Join(c.Periodic.Stop(), c.close())
}
