# kubling build, tests and benchmarks. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
BIN := bin/kubling

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
K8S_VERSION := $(shell $(GO) list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/kubernetes)
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

# Upstream components report their version through component-base and
# client-go; set them as kubernetes' own build does.
LDFLAGS := -s -w \
	-X github.com/kubling/kubling/pkg/version.Version=$(VERSION) \
	-X github.com/kubling/kubling/pkg/version.GitCommit=$(COMMIT) \
	$(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version, \
	  -X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) \
	  -X $(p).gitTreeState=clean -X $(p).buildDate=$(BUILD_DATE))

.PHONY: build test test-unit test-e2e bench bench-start clean

build: $(BIN)

$(BIN): $(shell find cmd pkg -name '*.go' -not -name '*_test.go') go.mod go.sum
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o $@ ./cmd/kubling

# Unit tests: fast, no root, no network.
test-unit:
	$(GO) test ./...

# End-to-end tests: root, real components, the built binary.
test-e2e: $(BIN)
	KUBLING_BIN=$(abspath $(BIN)) $(GO) test -tags e2e -count=1 -timeout 30m -v ./test/e2e/...

test: test-unit test-e2e

# Benchmarks print tables; figures go to docs/benchmarks.md.
bench: bench-start

bench-start: $(BIN)
	KUBLING_BIN=$(abspath $(BIN)) $(GO) run ./test/bench/start

clean:
	rm -rf bin
