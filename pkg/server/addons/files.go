// Package addons is kubling's manifests controller: it keeps the cluster in
// step with the YAML files of <data-dir>/server/manifests — the bundled
// add-ons (coredns, nfs-csi, nvidia-device-plugin), rendered there at
// start, and any file a user drops in. Files are applied with server-side
// apply, re-applied when they change, objects that leave a file are pruned,
// and a removed file takes its objects with it — but only objects kubling
// created and that still carry its ownership marks (owner.go).
package addons

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"

	"github.com/kubling/kubling/pkg/server/apply"
)

// UserOwnedMarker, as one of a file's first lines, keeps kubling from
// rewriting a bundled add-on's file: the user's edits survive restarts.
const UserOwnedMarker = "# kubling: user-owned"

// Header starts every bundled file kubling writes.
func Header(name string) string {
	return "# Bundled add-on " + name + ", written by kubling at every start: edits are\n" +
		"# overwritten unless the first line is \"" + UserOwnedMarker + "\".\n" +
		"# Remove the add-on with `kubling server --disable " + name + "`.\n"
}

// UserOwned says whether a file carries the marker in its first lines.
func UserOwned(content []byte) bool {
	s := bufio.NewScanner(bytes.NewReader(content))
	for i := 0; i < 5 && s.Scan(); i++ {
		if strings.TrimSpace(s.Text()) == UserOwnedMarker {
			return true
		}
	}
	return false
}

// Manifest reports whether a file name is one the controller applies.
func Manifest(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// validKey: state is kept in a ConfigMap, keyed by file name.
var validKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// Hash fingerprints a file's content.
func Hash(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// FileState is what the controller remembers of a file it applied. It is
// a hint of where to look, not a licence to delete: an object is deleted
// only if the live object carries kubling's marks naming the file.
type FileState struct {
	Hash    string      `json:"hash"`
	Objects []apply.Ref `json:"objects"`
	// Prune: objects that left the file and could not be deleted yet
	// (retried with back-off).
	Prune []apply.Ref `json:"prune,omitempty"`
	// Format 2 (stateFormat): the objects carry ownership marks. Entries
	// from earlier versions have none.
	Format int `json:"format,omitempty"`
}

// Pruned lists the objects of old that are not in current.
func Pruned(old, current []apply.Ref) []apply.Ref {
	var out []apply.Ref
	for _, o := range old {
		if !slices.ContainsFunc(current, o.SameObject) {
			out = append(out, o)
		}
	}
	return out
}
