package containerd

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"k8s.io/klog/v2"

	gzip "github.com/klauspost/compress/gzip"
)

// CRI labels: a pinned image is never garbage-collected by the kubelet.
var pinnedLabels = map[string]string{"io.cri-containerd.image": "managed", "io.cri-containerd.pinned": "pinned"}

// ImportArchives imports image archives (docker-save or OCI layout; plain,
// .gz or .zst) into the k8s.io namespace and unpacks them for the snapshotter.
// pinned archives are kubling's own (the payload's): they get the CRI's
// pinned label, their layers are dropped from the content store once
// unpacked (stored uncompressed in the payload, they would double the disk
// they take), and an archive whose images are all there and unpacked is not
// imported again (no rewrite of tens of MB on a node's flash at each start).
func ImportArchives(ctx context.Context, socket, snapshotter string, paths []string, pinned bool, log klog.Logger) error {
	if len(paths) == 0 {
		return nil
	}
	c, err := client.New(socket, client.WithDefaultNamespace(Namespace))
	if err != nil {
		return fmt.Errorf("connect to containerd: %w", err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, Namespace)
	for _, path := range paths {
		if pinned {
			present, err := imported(ctx, c, snapshotter, path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			if present {
				log.V(1).Info("Images already imported", "archive", path)
				continue
			}
		}
		names, err := importOne(ctx, c, snapshotter, path, pinned)
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		log.V(1).Info("Imported images", "archive", path, "images", names)
	}
	return nil
}

func importOne(ctx context.Context, c *client.Client, snapshotter, path string, pinned bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		r = gz
	case strings.HasSuffix(path, ".tar.zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	opts := []client.ImportOpt{client.WithImportPlatform(platforms.DefaultStrict())}
	if pinned {
		opts = append(opts, client.WithImageLabels(pinnedLabels), client.WithDiscardUnpackedLayers())
	}
	// One lease over import and unpack: the layers, unreferenced when
	// discarded, stay until they are unpacked.
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))
	imgs, err := c.Import(ctx, r, opts...)
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("no image in archive")
	}
	var names []string
	for _, img := range imgs {
		image := client.NewImageWithPlatform(c, img, platforms.DefaultStrict())
		if err := image.Unpack(ctx, snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// imported tells whether every image a docker-save archive names is in
// containerd with the archive's config and unpacked. An archive in another
// format, or one that names no image, is never taken as imported.
func imported(ctx context.Context, c *client.Client, snapshotter, path string) (bool, error) {
	want, err := savedImages(path)
	if err != nil || len(want) == 0 {
		return false, err
	}
	for ref, config := range want {
		img, err := c.GetImage(ctx, ref)
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		desc, err := img.Config(ctx)
		if err != nil || desc.Digest != config {
			return false, nil
		}
		if ok, err := img.IsUnpacked(ctx, snapshotter); err != nil || !ok {
			return false, nil
		}
	}
	return true, nil
}

// savedImages reads a docker-save archive's manifest.json: each image
// reference with its config's digest. An archive without one (an OCI
// layout) has none.
func savedImages(archive string) (map[string]digest.Digest, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(h.Name) != "manifest.json" {
			continue
		}
		var manifest []struct {
			Config   string
			RepoTags []string
		}
		if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		out := map[string]digest.Digest{}
		for _, m := range manifest {
			// "sha256:<hex>" (go-containerregistry) or "<hex>.json" (docker).
			d := strings.TrimSuffix(m.Config, ".json")
			if !strings.Contains(d, ":") {
				d = "sha256:" + d
			}
			config, err := digest.Parse(d)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: config %q: %w", m.Config, err)
			}
			for _, tag := range m.RepoTags {
				ref, err := reference.ParseDockerRef(tag)
				if err != nil {
					return nil, fmt.Errorf("manifest.json: %q: %w", tag, err)
				}
				out[ref.String()] = config
			}
		}
		return out, nil
	}
}

// AirgapArchives lists the image archives in dir (*.tar, *.tar.gz, *.tgz,
// *.tar.zst), sorted; a missing dir has none.
func AirgapArchives(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, ".tar") || strings.HasSuffix(n, ".tar.gz") || strings.HasSuffix(n, ".tgz") || strings.HasSuffix(n, ".tar.zst")) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}
