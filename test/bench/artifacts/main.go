// Command artifacts measures what a user downloads and how the cross builds
// start: for each architecture built (bin/kubling-<arch>, the native
// KUBLING_BIN), the binary, the release artifacts (xz -9 and gzip -9, as
// `make release` writes them), the payload embedded in it; and the cold start of
// `kubling server --disable-agent` to /readyz, native and under
// qemu-user. It prints a table; it is a benchmark, not a test.
//
//	KUBLING_BIN=bin/kubling go run ./test/bench/artifacts
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kubling/kubling/test/bench/benchutil"
)

// qemu names Debian's qemu-user-static program for a GOARCH.
var qemu = map[string]string{"amd64": "qemu-x86_64-static", "arm64": "qemu-aarch64-static", "arm": "qemu-arm-static"}

func main() {
	native := os.Getenv("KUBLING_BIN")
	if native == "" {
		benchutil.Fatal("KUBLING_BIN must be set (run `make bench-artifacts`)")
	}
	if os.Geteuid() != 0 {
		benchutil.Fatal("the benchmark starts kubling server and needs root")
	}
	r := benchutil.NewReport("artifacts", "release artifacts and cold start by architecture")
	var nativeStart time.Duration
	for _, arch := range []string{runtime.GOARCH, "amd64", "arm64", "arm"} {
		bin := filepath.Join(filepath.Dir(native), "kubling-"+arch)
		if arch == runtime.GOARCH {
			if nativeStart != 0 {
				continue
			}
			bin = native
		}
		fi, err := os.Stat(bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: no %s build (%s): skipped\n", arch, bin)
			continue
		}
		r.Add(arch+": release artifact (xz -9)", float64(compressedSize(bin, "xz -9 -T1"))/1e6, "MB", 60)
		r.Add(arch+": release artifact (gzip -9)", float64(compressedSize(bin, "gzip -9 -n"))/1e6, "MB", 0)
		r.Add(arch+": binary", float64(fi.Size())/1e6, "MB", 0)
		// The agent build (`make build` makes it beside kubling): what an
		// agent downloads.
		agent := filepath.Join(filepath.Dir(native), "kubling-agent-"+arch)
		if arch == runtime.GOARCH {
			agent = filepath.Join(filepath.Dir(native), "kubling-agent")
		}
		if _, err := os.Stat(agent); err == nil {
			r.Add(arch+": agent release artifact (xz -9)", float64(compressedSize(agent, "xz -9 -T1"))/1e6, "MB", 60)
			r.Add(arch+": agent release artifact (gzip -9)", float64(compressedSize(agent, "gzip -9 -n"))/1e6, "MB", 0)
		} else {
			fmt.Fprintf(os.Stderr, "bench: no %s agent build (%s): skipped\n", arch, agent)
		}
		if p, err := os.Stat(filepath.Join("pkg/agent/payload/assets", arch, "payload.tar")); err == nil {
			r.Add(arch+": embedded payload (plain tar)", float64(p.Size())/1e6, "MB", 0)
		}
		argv := []string{bin}
		if arch != runtime.GOARCH {
			argv = []string{qemu[arch], bin}
		}
		d := coldStart(argv)
		if arch == runtime.GOARCH {
			nativeStart = d
			r.Add(arch+": cold start to /readyz (control plane)", d.Seconds(), "s", 0)
		} else {
			r.Add(arch+": cold start to /readyz under qemu-user", d.Seconds(), "s", 0)
			r.Add(arch+": emulated start relative to native", d.Seconds()/nativeStart.Seconds(), "×", 0)
		}
	}
	r.Print()
}

// compressedSize is the size of the binary compressed by the command
// compress (as `make release` runs it).
func compressedSize(bin, compress string) int64 {
	out, err := exec.Command("sh", "-c", compress+` -c "$1" | wc -c`, "sh", bin).Output()
	benchutil.Must(err)
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	benchutil.Must(err)
	return n
}

func coldStart(argv []string) time.Duration {
	dir, err := os.MkdirTemp("", "kubling-bench-artifacts-")
	benchutil.Must(err)
	defer os.RemoveAll(dir)
	d, p, err := benchutil.ServerReadyz(argv, dir, 10*time.Minute)
	benchutil.Must(err)
	benchutil.Stop(p)
	return d
}
