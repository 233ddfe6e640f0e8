# kubling build, tests and benchmarks. `make test` is what CI runs.
SHELL := /bin/bash
# A rule that fails part-way must not leave a target that looks up to date.
.DELETE_ON_ERROR:
GO ?= go

# The architecture to build for, as Go names it: amd64, arm64, or arm
# (armv7, hard float); by default this machine's. A cross build uses
# Debian's cross compiler for the cgo parts (SQLite, runc) and Debian's
# packages of ARCH for what the payload bundles (`make release` sets up both).
HOST_ARCH := $(shell $(GO) env GOHOSTARCH)
ARCH ?= $(HOST_ARCH)
triplet_amd64 := x86_64-linux-gnu
triplet_arm64 := aarch64-linux-gnu
triplet_arm := arm-linux-gnueabihf
TRIPLET := $(triplet_$(ARCH))
ifeq ($(TRIPLET),)
$(error ARCH=$(ARCH): kubling builds for amd64, arm64 and arm)
endif
DEB_ARCH := $(if $(filter arm,$(ARCH)),armhf,$(ARCH))
CROSS := $(if $(filter $(HOST_ARCH),$(ARCH)),,$(TRIPLET)-)
TARGET_ENV := GOOS=linux GOARCH=$(ARCH) $(if $(filter arm,$(ARCH)),GOARM=7) CC=$(CROSS)gcc
BIN := bin/kubling$(if $(CROSS),-$(ARCH))
AGENT_BIN := bin/kubling-agent$(if $(CROSS),-$(ARCH))

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
K8S_VERSION := $(shell $(GO) list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/kubernetes)
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

# Upstream components report their version through component-base and
# client-go; set them as kubernetes' own build does.
K8S_VERSION_LDFLAGS := -s -w $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version, \
	-X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) \
	-X $(p).gitTreeState=clean -X $(p).buildDate=$(BUILD_DATE))
LDFLAGS := $(K8S_VERSION_LDFLAGS) \
	-X github.com/kubling/kubling/pkg/version.Version=$(VERSION) \
	-X github.com/kubling/kubling/pkg/version.GitCommit=$(COMMIT)

.PHONY: build deps test-deps release-deps release release-arch test-arm payload test test-unit check-imports fuzz test-e2e test-multinode bench bench-out bench-start bench-node bench-agent bench-netpol bench-kubeproxy bench-datastore bench-artifacts conformance-deps conformance-build conformance-images conformance conformance-multinode clean

build: $(BIN) $(AGENT_BIN)

# Debian packages the build needs: installed as root, else named (scripts/deps.sh).
deps:
	@scripts/deps.sh build

# ... and those the end-to-end tests need too (docker.io, debootstrap, busybox-static…).
test-deps:
	@scripts/deps.sh test

# The payload: helper programs built from the pinned modules in payload/go.mod
# (static, stripped), Debian's iptables with what it needs to run, and the
# pause and CoreDNS images, packed into the archive kubling embeds for ARCH
# (pkg/agent/payload/assets/ARCH). Tags and link flags follow each project's
# own release build. runc links the target's libseccomp statically from
# Debian's package, unpacked beside the payload (nothing is installed).
PAYLOAD_DIR := build/payload/$(ARCH)
PAYLOAD_ROOT := $(PAYLOAD_DIR)/root
PAYLOAD := pkg/agent/payload/assets/$(ARCH)/payload.tar
DEBIAN_ROOT := $(PAYLOAD_DIR)/debian
payload_go = cd payload && $(TARGET_ENV) $(2) CGO_ENABLED=$(1) GOFLAGS=-trimpath $(GO)
# runc is a static PIE where the target's libc ships one (Debian's armhf
# does not: a plain static executable there).
RUNC_STATIC := $(if $(filter arm,$(ARCH)),-extldflags -static,-extldflags -static-pie)
RUNC_MODE := $(if $(filter arm,$(ARCH)),,-buildmode=pie)
# libseccomp from the unpacked package: through pkg-config, and through
# CGO_CFLAGS/CGO_LDFLAGS too, which Go's build cache keys on (it does not
# key on PKG_CONFIG_*: a cached build against another libseccomp came back).
SECCOMP_PKG_CONFIG := PKG_CONFIG_SYSROOT_DIR=$(abspath $(DEBIAN_ROOT)) PKG_CONFIG_LIBDIR=$(abspath $(DEBIAN_ROOT))/usr/lib/$(TRIPLET)/pkgconfig \
	CGO_CFLAGS='-O2 -g -I$(abspath $(DEBIAN_ROOT))/usr/include' CGO_LDFLAGS='-O2 -g -L$(abspath $(DEBIAN_ROOT))/usr/lib/$(TRIPLET)'
modver = $(shell cd payload && $(GO) list -m -f '{{.Version}}' $(1))
# iptables, ipset and nft for hosts without them (pkg/agent/iptables):
# Debian's packages for ARCH, bundled with the libraries and the loader they need.
IPTABLES_DEBS := iptables libxtables12 libip4tc2 libip6tc2 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libc6 ipset libipset13 \
	nftables libnftables1 libedit2 libbsd0 libmd0 libtinfo6 libgmp10 libjansson4
# CoreDNS (payload/coredns: upstream's module, fewer plugins) as the image
# the bundled manifest names. The bundled images' layers are stored
# uncompressed (-raw), as the payload is: the release artifact is compressed
# as a whole, and CoreDNS's Go code then shares xz's window with the other
# programs'. Nodes drop the layer once unpacked (pkg/agent/containerd).
COREDNS_VERSION = $(shell cd payload/coredns && $(GO) list -m -f '{{.Version}}' github.com/coredns/coredns)
CNI_PLUGINS := $(addprefix github.com/containernetworking/plugins/plugins/,ipam/host-local main/bridge main/loopback meta/bandwidth meta/portmap)

# Build tools that run here (this machine's architecture, whatever ARCH is).
TOOLS := build/payload/tools
TOOL_BINS := $(addprefix $(TOOLS)/,mkimage pack elfbundle)
$(TOOL_BINS) &: payload/go.mod payload/go.sum $(shell find payload/cmd -name '*.go')
	mkdir -p $(TOOLS)
	cd payload && CGO_ENABLED=0 GOFLAGS=-trimpath $(GO) build -o ../$(TOOLS)/ ./cmd/mkimage ./cmd/pack ./cmd/elfbundle

payload: $(PAYLOAD)

$(PAYLOAD): payload/go.mod payload/go.sum payload/coredns/go.mod payload/coredns/go.sum $(shell find payload -name '*.go') scripts/debian-root.sh $(TOOL_BINS) | deps
	rm -rf $(PAYLOAD_DIR) && mkdir -p $(PAYLOAD_ROOT)/bin $(PAYLOAD_ROOT)/images
	scripts/debian-root.sh $(DEB_ARCH) $(DEBIAN_ROOT) $(IPTABLES_DEBS) libseccomp-dev libseccomp2
	$(TOOLS)/elfbundle -root $(DEBIAN_ROOT) -out $(PAYLOAD_ROOT)/iptables \
		-program usr/sbin/xtables-nft-multi -program usr/sbin/xtables-legacy-multi -program usr/sbin/ipset -program usr/sbin/nft -plugins 'usr/lib/*/xtables'
	cp $(DEBIAN_ROOT).versions $(PAYLOAD_ROOT)/iptables/versions.txt
	$(call payload_go,0) build -ldflags '-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$(call modver,github.com/containernetworking/plugins)' \
		-o ../$(PAYLOAD_ROOT)/bin/ $(CNI_PLUGINS)
	$(call payload_go,0) build -tags 'urfave_cli_no_docs no_grpc' \
		-ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=$(call modver,github.com/containerd/containerd/v2)' \
		-o ../$(PAYLOAD_ROOT)/bin/ github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	$(call payload_go,0) build -tags 'no_btrfs no_zfs no_devmapper urfave_cli_no_docs' \
		-ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=$(call modver,github.com/containerd/containerd/v2)' \
		-o ../$(PAYLOAD_ROOT)/bin/containerd ./cmd/containerd
	$(call payload_go,1,$(SECCOMP_PKG_CONFIG)) build $(RUNC_MODE) -tags 'seccomp urfave_cli_no_docs netgo osusergo' \
		-ldflags '-s -w -X main.version=$(patsubst v%,%,$(call modver,github.com/opencontainers/runc)) -linkmode external $(RUNC_STATIC)' \
		-o ../$(PAYLOAD_ROOT)/bin/ github.com/opencontainers/runc
	$(call payload_go,0) build -ldflags '-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(call modver,sigs.k8s.io/cri-tools)' \
		-o ../$(PAYLOAD_ROOT)/bin/ sigs.k8s.io/cri-tools/cmd/crictl
	$(call payload_go,0) build -ldflags '-s -w' -o ../$(PAYLOAD_DIR)/pause ./cmd/pause
	$(TOOLS)/mkimage -raw -arch $(ARCH) $(if $(filter arm,$(ARCH)),-variant v7) -name registry.k8s.io/pause:3.10.2 -entrypoint /pause -user 65535:65535 \
		-file pause=$(PAYLOAD_DIR)/pause -out $(PAYLOAD_ROOT)/images/pause.tar
	cd payload/coredns && $(TARGET_ENV) CGO_ENABLED=0 GOFLAGS=-trimpath $(GO) build -ldflags '-s -w' -o ../../$(PAYLOAD_DIR)/coredns .
	$(TOOLS)/mkimage -raw -arch $(ARCH) $(if $(filter arm,$(ARCH)),-variant v7) -name localhost/kubling/coredns:$(COREDNS_VERSION) \
		-entrypoint /coredns -user 65532:65532 -file coredns=$(PAYLOAD_DIR)/coredns -out $(PAYLOAD_ROOT)/images/coredns.tar
	rm -f $(dir $(PAYLOAD))payload.tar.zst # the zstd archive of earlier builds: embedded too, if left
	$(TOOLS)/pack -dir $(PAYLOAD_ROOT) -out $(dir $(PAYLOAD))

# Static, so it runs on any Linux of its architecture (glibc, musl or
# neither): Go's own resolver and user lookup, SQLite without extension
# loading. On armv7 without cgo: glibc's static start-up crashes there in a
# binary this large (its IRELATIVE relocations, seen under qemu-arm), so
# kine uses its pure-Go SQLite (modernc.org/sqlite) on that architecture.
MAIN_CGO := $(if $(filter arm,$(ARCH)),0,1)
MAIN_LINK := $(if $(filter 1,$(MAIN_CGO)),-linkmode external -extldflags -static)
# kubectl's kustomize can load Go plugins; linking Go's plugin package into a
# cgo binary makes the linker keep every method of every type (9 MB here).
# kubling never loads one.
MAIN_TAGS := netgo osusergo kustomize_disable_go_plugin_support
$(BIN): $(PAYLOAD) $(shell find cmd pkg manifests -name '*.go' -not -name '*_test.go') manifests/*.yaml go.mod go.sum | deps
	$(TARGET_ENV) CGO_ENABLED=$(MAIN_CGO) $(GO) build -tags '$(MAIN_TAGS) sqlite_omit_load_extension' \
		-ldflags '$(LDFLAGS) $(MAIN_LINK)' -o $@ ./cmd/kubling

# The agent build: `kubling agent` and the node's tools without the control
# plane (tag agentonly, cmd/kubling/commands_agent.go): half the code, so an
# agent maps half the pages (docs/benchmarks.md). Released beside kubling;
# install.sh installs it for agents.
$(AGENT_BIN): $(PAYLOAD) $(shell find cmd pkg -name '*.go' -not -name '*_test.go') go.mod go.sum | deps
	$(TARGET_ENV) CGO_ENABLED=$(MAIN_CGO) $(GO) build -tags '$(MAIN_TAGS) agentonly' \
		-ldflags '$(LDFLAGS) $(MAIN_LINK)' -o $@ ./cmd/kubling

# Releases: each binary per architecture compressed twice, xz (what
# install.sh takes where the host has xz) and gzip (on every host, BusyBox's
# included), and sha256sum.txt, in dist/. xz runs on one thread: threads
# split the input into blocks compressed apart, and the payload's programs
# (plain in the binary) then lose their matches in kubling's own code. Each
# architecture is a build of its own (cold, about 18 minutes here); the
# version comes from git.
RELEASE_ARCHES := amd64 arm64 arm
release-deps:
	@scripts/deps.sh release

release: | release-deps
	rm -rf dist && mkdir -p dist
	set -e; for a in $(RELEASE_ARCHES); do $(MAKE) --no-print-directory ARCH=$$a release-arch; done
	cd dist && sha256sum kubling-*.xz kubling-*.gz >sha256sum.txt && cat sha256sum.txt

release-arch: $(BIN) $(AGENT_BIN)
	xz -9 -T1 -c $(BIN) >dist/kubling-$(ARCH).xz
	xz -9 -T1 -c $(AGENT_BIN) >dist/kubling-agent-$(ARCH).xz
	gzip -9 -n -c $(BIN) >dist/kubling-$(ARCH).gz
	gzip -9 -n -c $(AGENT_BIN) >dist/kubling-agent-$(ARCH).gz

# The arm64 and armv7 builds, run here under qemu-user (docs/testing.md):
# --version, check-config, every payload program's version, and a server
# without its node reaching /readyz on SQLite. Not part of `make test`: the
# cross builds take too long for CI.
test-arm: | release-deps
	set -e; for a in arm64 arm; do $(MAKE) --no-print-directory ARCH=$$a build; \
		KUBLING_BIN=$(abspath bin)/kubling-$$a KUBLING_ARCH=$$a KUBLING_PAYLOAD_ROOT=$(abspath build/payload)/$$a/root \
		$(GO) test -tags e2e -count=1 -timeout 30m -v ./test/emulated/; done

# Unit tests: fast, no root, no network. The payload is embedded, so it is built first.
# Run as root (the README's `sudo make test`): tests that need root fail
# rather than skip when it is not (KUBLING_TEST_AS_ROOT).
test-unit: $(PAYLOAD) check-imports
	KUBLING_TEST_AS_ROOT=1 $(GO) test ./...
	cd payload && $(GO) test ./cmd/...

# Imports point downwards: the node, the settings and the join protocol never
# depend on the control plane (docs/architecture.md).
check-imports:
	@bad=$$($(GO) list -deps ./pkg/agent/... ./pkg/config/... ./pkg/join/... | grep '^github.com/kubling/kubling/pkg/server' || true); \
	if [ -n "$$bad" ]; then echo "pkg/agent, pkg/config or pkg/join import pkg/server:" $$bad >&2; exit 1; fi; \
	echo "check-imports: pkg/agent, pkg/config and pkg/join import nothing under pkg/server"

# Fuzz tests (docs/testing.md), each for FUZZTIME: -fuzz takes one target of
# one package per run. Their seed corpora run in test-unit; this is not part
# of `make test`. A failing input is kept in the package's testdata/fuzz.
FUZZTIME ?= 30s
FUZZFLAGS ?=
FUZZ_TARGETS := token:FuzzParse config:FuzzLoadFile config:FuzzConfigValue \
	agent/containerd:FuzzRegistries server/apply:FuzzDecode hostcheck:FuzzParseProcNetRoute \
	server/nodejoin:FuzzDecodeRequest server/bootstrapdata:FuzzOpen \
	server/serverjoin:FuzzServeJoinRequest datastore:FuzzSnapshotReader \
	server/encryption:FuzzParseConfiguration

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=./pkg/$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg; \
	done

# Test images, built locally (no registry is reachable): busybox from
# Debian's busybox-static, as an image archive for the airgap folder.
TEST_IMAGES := build/test-images
BUSYBOX_APPLETS := sh sleep cat echo hostname wget httpd nslookup ls mkdir timeout

$(TEST_IMAGES)/busybox.tar: $(TOOLS)/mkimage Makefile | test-deps
	mkdir -p $(TEST_IMAGES)
	$(TOOLS)/mkimage -name kubling.test/busybox:1 -file bin/busybox=/bin/busybox \
		$(foreach a,$(BUSYBOX_APPLETS),-link bin/$(a)=busybox) -out $@

# End-to-end tests: root, real components, the built binary.
test-e2e: $(BIN) $(TEST_IMAGES)/busybox.tar | test-deps
	KUBLING_BIN=$(abspath $(BIN)) KUBLING_TEST_IMAGES=$(abspath $(TEST_IMAGES)) \
		$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/...

# Multi-node end-to-end: a server and two agents as containers on a local
# Docker engine (started here when none runs), from Dockerfile.test on a
# Debian base made with debootstrap (cached as a Docker image).
# The tag names what is in the image: a cached image of another content is
# never taken for it. The node base has no iptables (kubling's own runs).
BASE_IMAGE := kubling-test-base:bookworm-no-iptables
NODE_IMAGE := kubling-test-node:latest
# For the installer test: systemd as PID 1, wget for downloads, and the
# host's iptables (kubling uses it where there is one).
SYSTEMD_IMAGE := kubling-test-systemd:bookworm-iptables
test-multinode: $(BIN) $(AGENT_BIN) $(TEST_IMAGES)/busybox.tar | test-deps
	test/multinode/docker.sh start
	test/multinode/docker.sh base-image $(BASE_IMAGE)
	test/multinode/docker.sh base-image $(SYSTEMD_IMAGE) systemd,systemd-sysv,dbus,wget,iptables
	docker build -q --build-arg BASE=$(BASE_IMAGE) -f Dockerfile.test -t $(NODE_IMAGE) . >/dev/null
	KUBLING_NODE_IMAGE=$(NODE_IMAGE) KUBLING_BASE_IMAGE=$(BASE_IMAGE) KUBLING_SYSTEMD_IMAGE=$(SYSTEMD_IMAGE) KUBLING_BIN=$(abspath $(BIN)) \
		KUBLING_AGENT_BIN=$(abspath $(AGENT_BIN)) KUBLING_PAYLOAD_ROOT=$(abspath $(PAYLOAD_ROOT)) \
		KUBLING_TEST_IMAGES=$(abspath $(TEST_IMAGES)) $(GO) test -tags e2e -count=1 -timeout 30m -v $(if $(MULTINODE_RUN),-run '$(MULTINODE_RUN)') ./test/multinode/...; \
		rc=$$?; test/multinode/docker.sh stop; exit $$rc
test: test-unit test-e2e test-multinode

# The upstream conformance suite (docs/conformance.md), from the same
# k8s.io/kubernetes version kubling links (test/conformance/go.mod, same
# staging replace block): e2e.test, ginkgo, agnhost, nnp and the aggregator
# spec's sample-apiserver and etcd, static, as upstream builds them; and the
# registry run.sh serves the images from (payload/cmd/registry). Not part of
# `make test`: a cold build takes many minutes.
CONFORMANCE := build/conformance
conformance_go = cd test/conformance && CGO_ENABLED=0 GOFLAGS=-trimpath $(GO)

conformance_k8s = $(shell cd test/conformance && $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)

conformance-build:
	@test "$(conformance_k8s)" = "$(K8S_VERSION)" || { echo "test/conformance/go.mod pins k8s.io/kubernetes $(conformance_k8s), kubling $(K8S_VERSION)" >&2; exit 1; }
	mkdir -p $(CONFORMANCE)
	$(conformance_go) test -c -ldflags '$(K8S_VERSION_LDFLAGS)' -o ../../$(CONFORMANCE)/e2e.test k8s.io/kubernetes/test/e2e
	$(conformance_go) build -ldflags '-s -w' -o ../../$(CONFORMANCE)/ github.com/onsi/ginkgo/v2/ginkgo k8s.io/kubernetes/test/images/agnhost
	$(conformance_go) build -ldflags '-s -w' -o ../../$(CONFORMANCE)/nnp k8s.io/kubernetes/test/images/nonewprivs
	$(conformance_go) build -ldflags '-s -w' -o ../../$(CONFORMANCE)/sample-apiserver k8s.io/sample-apiserver
	$(conformance_go) build -ldflags '-s -w' -o ../../$(CONFORMANCE)/etcd go.etcd.io/etcd/server/v3
	$(call payload_go,0) build -ldflags '-s -w' -o ../$(CONFORMANCE)/ ./cmd/registry

# The images the suite runs, under the names it asks for, packed from a
# Debian root made with debootstrap (kept; delete it to remake it) and the
# binaries above (test/conformance/images.sh says how each is made).
# CoreDNS comes from kubling's payload, as on any cluster.
$(CONFORMANCE)/rootfs: test/conformance/rootfs.sh | conformance-deps
	test/conformance/rootfs.sh $@

$(CONFORMANCE)/busybox: test/conformance/busybox.sh | conformance-deps
	test/conformance/busybox.sh $@

conformance-deps:
	@scripts/deps.sh conformance

conformance-images: conformance-build $(CONFORMANCE)/rootfs $(CONFORMANCE)/busybox $(TOOLS)/mkimage
	MKIMAGE=$(TOOLS)/mkimage ROOTFS=$(CONFORMANCE)/rootfs BIN=$(CONFORMANCE) BUSYBOX=$(CONFORMANCE)/busybox \
		K8S_DIR=$$(cd test/conformance && $(GO) list -m -f '{{.Dir}}' k8s.io/kubernetes) \
		test/conformance/images.sh $(CONFORMANCE)/images

# The suite against `kubling server` with its node (root; ports 6443 and
# 10250 free): CONFORMANCE_FOCUS / CONFORMANCE_SKIP narrow it,
# CONFORMANCE_PASSES picks "parallel" and/or "serial". Results, junit and
# logs in build/conformance/results/single; one line per pass "N passed, M
# failed".
conformance: $(BIN) conformance-images
	rm -rf $(CONFORMANCE)/results/single
	KUBLING_BIN=$(abspath $(BIN)) CONFORMANCE_DIR=$(abspath $(CONFORMANCE)) \
		test/conformance/run.sh $(CONFORMANCE)/results/single

# The same against one server and two agents in the multi-node harness's
# containers, the suite's images in each node's airgap folder; results in
# build/conformance/results/multinode.
CONFORMANCE_NODE_IMAGE := kubling-conformance-node:latest
# The harness network's gateway: the host, where run.sh serves the images for
# forced pulls; every node mirrors registry.k8s.io to it.
CONFORMANCE_REGISTRY := 172.30.99.1:5000
conformance-multinode: $(BIN) $(TEST_IMAGES)/busybox.tar conformance-images | test-deps
	rm -rf $(CONFORMANCE)/results/multinode && mkdir -p $(CONFORMANCE)/results/multinode
	test/multinode/docker.sh start
	test/multinode/docker.sh base-image $(BASE_IMAGE)
	docker build -q --build-arg BASE=$(BASE_IMAGE) -f Dockerfile.test -t $(NODE_IMAGE) . >/dev/null
	docker build -q --build-arg BASE=$(NODE_IMAGE) --build-arg REGISTRY=$(CONFORMANCE_REGISTRY) \
		-f test/conformance/Dockerfile.node -t $(CONFORMANCE_NODE_IMAGE) $(CONFORMANCE)/images >/dev/null
	KUBLING_NODE_IMAGE=$(CONFORMANCE_NODE_IMAGE) KUBLING_BIN=$(abspath $(BIN)) CONFORMANCE_DIR=$(abspath $(CONFORMANCE)) \
		CONFORMANCE_RESULTS=$(abspath $(CONFORMANCE))/results/multinode CONFORMANCE_REGISTRY=$(CONFORMANCE_REGISTRY) \
		$(GO) test -tags 'e2e conformance' -run '^TestConformance$$' -count=1 -timeout 12h -v ./test/multinode/; \
		rc=$$?; test/multinode/docker.sh stop; exit $$rc

# Benchmarks print tables; figures go to docs/benchmarks.md. `make bench`
# ends with one table of every figure beside its goal and the previous run's
# value (docs/bench-last.json, updated by the run: commit it with the docs).
# bench-artifacts builds the three architectures first (warm: minutes).
BENCH_OUT := build/bench
bench_env = KUBLING_BIN=$(abspath $(BIN)) KUBLING_BENCH_OUT=$(abspath $(BENCH_OUT))
bench: bench-out bench-start bench-node bench-agent bench-netpol bench-kubeproxy bench-datastore bench-artifacts
	KUBLING_BENCH_OUT=$(abspath $(BENCH_OUT)) $(GO) run ./test/bench/summary
	@rm -rf $(BENCH_OUT)

bench-out:
	rm -rf $(BENCH_OUT)

bench-start: $(BIN)
	$(bench_env) $(GO) run ./test/bench/start

bench-node: $(BIN) $(TEST_IMAGES)/busybox.tar
	$(bench_env) KUBLING_TEST_IMAGES=$(abspath $(TEST_IMAGES)) $(GO) run ./test/bench/node

# NetworkPolicy: blocking latency with 50 and 500 pods, memory it adds.
bench-netpol: $(BIN) $(TEST_IMAGES)/busybox.tar
	$(bench_env) KUBLING_TEST_IMAGES=$(abspath $(TEST_IMAGES)) $(GO) run ./test/bench/netpol

# kube-proxy: iptables against nftables mode (Services programmed, memory).
bench-kubeproxy: $(BIN) $(TEST_IMAGES)/busybox.tar
	$(bench_env) KUBLING_TEST_IMAGES=$(abspath $(TEST_IMAGES)) $(GO) run ./test/bench/kubeproxy

bench-agent: $(BIN) $(AGENT_BIN) $(TEST_IMAGES)/busybox.tar
	$(bench_env) KUBLING_AGENT_BIN=$(abspath $(AGENT_BIN)) KUBLING_TEST_IMAGES=$(abspath $(TEST_IMAGES)) $(GO) run ./test/bench/agent

bench-artifacts: $(BIN) $(AGENT_BIN) | release-deps
	set -e; for a in $(filter-out $(ARCH),$(RELEASE_ARCHES)); do $(MAKE) --no-print-directory ARCH=$$a build; done
	$(bench_env) $(GO) run ./test/bench/artifacts

# SQLite, embedded etcd, PostgreSQL and MariaDB side by side (Debian's
# servers, from deps.sh test).
bench-datastore: $(BIN) | test-deps
	KUBLING_BIN=$(abspath $(BIN)) $(GO) run ./test/bench/datastore
clean:
	rm -rf bin build dist pkg/agent/payload/assets/*/payload.*
