package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/klauspost/compress/zstd"
	"k8s.io/klog/v2"

	gzip "github.com/klauspost/compress/gzip"
)

// CRI labels: a pinned image is never garbage-collected by the kubelet.
var pinnedLabels = map[string]string{"io.cri-containerd.image": "managed", "io.cri-containerd.pinned": "pinned"}

// ImportArchives imports image archives (docker-save or OCI layout; plain,
// .gz or .zst) into the k8s.io namespace and unpacks them for the snapshotter.
// pinned archives get the CRI's pinned label.
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
		opts = append(opts, client.WithImageLabels(pinnedLabels))
	}
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
