// Command registry serves image archives over the registry API on one
// address, so a node can pull what it would otherwise only import: the
// conformance suite forces pulls (imagePullPolicy: Always), which an airgap
// folder cannot answer (docs/conformance.md). Every name in every archive is
// served under its path without the registry host, so a registries.yaml
// mirror for that registry points at this address:
//
//	registry -listen 127.0.0.1:0 -addr-file addr -blobs /tmp/blobs build/conformance/images/*.tar
//	mirrors: {registry.k8s.io: {endpoint: ["http://ADDR"]}}
//
// It loads the archives, writes the address it listens on to -addr-file
// (written whole, last), and serves until SIGINT or SIGTERM. Plain HTTP:
// it is for loopback and test networks only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (port 0: any free port)")
	addrFile := flag.String("addr-file", "", "file to write the address served on, once the images are loaded")
	blobs := flag.String("blobs", "", "folder for the layers (default: memory)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "registry: no image archives given")
		os.Exit(2)
	}
	if err := run(*listen, *addrFile, *blobs, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func run(listen, addrFile, blobs string, archives []string) error {
	var opts []registry.Option
	if blobs != "" {
		if err := os.MkdirAll(blobs, 0o755); err != nil {
			return err
		}
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))
	}
	opts = append(opts, registry.Logger(log.New(os.Stderr, "registry: ", log.LstdFlags)))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(opts...), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	n, err := pushAll(addr, archives)
	if err != nil {
		return err
	}
	if addrFile != "" {
		if err := writeWhole(addrFile, addr+"\n"); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "registry: serving %d images from %d archives on %s\n", n, len(archives), addr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// pushAll pushes every archive's images to the registry at addr and says
// how many names it pushed.
func pushAll(addr string, archives []string) (int, error) {
	n := 0
	for _, a := range archives {
		pushed, err := push(addr, a)
		if err != nil {
			return n, fmt.Errorf("%s: %w", a, err)
		}
		n += pushed
	}
	return n, nil
}

// push writes every name the archive holds to the registry at addr, each
// under its repository path without the registry host.
func push(addr, archive string) (int, error) {
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range manifest {
		for _, t := range d.RepoTags {
			tag, err := name.NewTag(t, name.StrictValidation)
			if err != nil {
				return n, fmt.Errorf("name %q: %w", t, err)
			}
			img, err := tarball.ImageFromPath(archive, &tag)
			if err != nil {
				return n, fmt.Errorf("%s: %w", t, err)
			}
			local, err := name.NewTag(addr+"/"+tag.RepositoryStr()+":"+tag.TagStr(), name.Insecure)
			if err != nil {
				return n, err
			}
			if err := remote.Write(local, img); err != nil {
				return n, fmt.Errorf("push %s: %w", t, err)
			}
			n++
		}
	}
	return n, nil
}

// writeWhole writes path through a temporary file in the same folder, so a
// reader sees nothing or all of it.
func writeWhole(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
