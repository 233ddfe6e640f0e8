#!/bin/bash
# Runs the upstream conformance suite against a kubling cluster
# (docs/conformance.md): `make conformance` calls it after building the
# suite and its images.
#
#   test/conformance/run.sh RESULTS_DIR
#
# With KUBECONFIG unset it starts `kubling server` (its node beside it) on a
# fresh data dir with the images in its airgap folder, and stops it and
# cleans the host after; with KUBECONFIG set it runs against that cluster
# (the multi-node shape). Then the [Conformance] specs in two passes: the
# parallel ones with ginkgo -p, the [Serial] ones one at a time (ginkgo's
# labels: Conformance && !Serial, then Conformance && Serial).
#
# Two specs force a pull (imagePullPolicy: Always), which the airgap folder
# cannot answer: a registry (CONFORMANCE_DIR/registry, payload/cmd/registry)
# serves the same archives, and the nodes mirror registry.k8s.io to it. On
# one node it listens on loopback and run.sh writes the registries.yaml; in
# the multi-node shape it listens on CONFORMANCE_REGISTRY (an address the
# containers reach), which their registries.yaml names.
#
# Environment: KUBLING_BIN, CONFORMANCE_DIR (e2e.test, ginkgo, registry, images/),
# CONFORMANCE_FOCUS / CONFORMANCE_SKIP (ginkgo --focus / --skip regular
# expressions narrowing both passes), CONFORMANCE_PASSES ("parallel serial"), CONFORMANCE_PROCS (4),
# CONFORMANCE_SERVER_ARGS (more `kubling server` flags, e.g. --cluster-init).
set -euo pipefail
results=${1:?usage: run.sh RESULTS_DIR}
dir=${CONFORMANCE_DIR:?}
passes=${CONFORMANCE_PASSES:-parallel serial}
procs=${CONFORMANCE_PROCS:-4}
mkdir -p "$results"
results=$(realpath "$results")
log() { echo "conformance: $*" >&2; }

# The suite's kubectl is kubling's (the same Kubernetes version).
bindir=$(mktemp -d)
data=
server_pid=
registry_pid=
cleanup() {
	if [ -n "$registry_pid" ]; then
		kill -TERM "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
	fi
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
		KUBLING_DATA_DIR=$data "$(dirname "$0")/../../scripts/kubling-killall.sh" >>"$results/server.log" 2>&1 || true
	fi
	[ -z "$data" ] || rm -rf "$data"
	rm -rf "$bindir"
}
trap cleanup EXIT
ln -s "$(realpath "${KUBLING_BIN:?}")" "$bindir/kubectl"

# start_registry ADDRESS: serves the archives there; registry_addr is where.
start_registry() {
	rm -f "$bindir/registry.addr"
	"$dir/registry" -listen "$1" -addr-file "$bindir/registry.addr" -blobs "$bindir/blobs" \
		"$dir"/images/*.tar >"$results/registry.log" 2>&1 &
	registry_pid=$!
	for _ in $(seq 600); do
		[ ! -s "$bindir/registry.addr" ] || break
		kill -0 "$registry_pid" 2>/dev/null || { tail -5 "$results/registry.log" >&2; log "registry exited"; exit 1; }
		sleep 0.5
	done
	[ -s "$bindir/registry.addr" ] || { log "registry not serving after 5 minutes"; exit 1; }
	registry_addr=$(cat "$bindir/registry.addr")
	log "registry serving on $registry_addr (log: $results/registry.log)"
}

if [ -z "${KUBECONFIG:-}" ]; then
	data=$(mktemp -d /var/tmp/kubling-conformance.XXXXXX)
	mkdir -p "$data/agent/images"
	cp "$dir"/images/*.tar "$data/agent/images/"
	start_registry 127.0.0.1:0
	printf 'mirrors: {registry.k8s.io: {endpoint: ["http://%s"]}}\n' "$registry_addr" >"$data/registries.yaml"
	export KUBECONFIG=$data/kubeconfig.yaml
	log "starting kubling server on $data (log: $results/server.log)"
	"$KUBLING_BIN" server --data-dir "$data" --write-kubeconfig "$KUBECONFIG" \
		--private-registry "$data/registries.yaml" ${CONFORMANCE_SERVER_ARGS:-} >"$results/server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 600); do
		grep -q 'kubling is ready' "$results/server.log" && break
		kill -0 "$server_pid" 2>/dev/null || { tail -20 "$results/server.log" >&2; log "kubling server exited"; exit 1; }
		sleep 0.5
	done
	grep -q 'kubling is ready' "$results/server.log" || { log "kubling server not ready after 5 minutes"; exit 1; }
elif [ -n "${CONFORMANCE_REGISTRY:-}" ]; then
	start_registry "$CONFORMANCE_REGISTRY"
fi
# The suite waits for every kube-system pod too; say which one holds it up.
"$bindir/kubectl" wait --for=condition=Ready pods --all -n kube-system --timeout=5m >/dev/null ||
	{ "$bindir/kubectl" get pods -A -o wide >&2; log "kube-system pods not Ready"; exit 1; }
"$bindir/kubectl" version >"$results/version.txt"
"$bindir/kubectl" get nodes -o wide >"$results/nodes.txt"

rc=0
for pass in $passes; do
	case $pass in
	parallel) labels='Conformance && !Serial' par=(-p --procs="$procs") ;;
	serial) labels='Conformance && Serial' par=() ;;
	*) log "CONFORMANCE_PASSES: unknown pass $pass"; exit 2 ;;
	esac
	narrow=()
	[ -z "${CONFORMANCE_FOCUS:-}" ] || narrow+=(--focus="$CONFORMANCE_FOCUS")
	[ -z "${CONFORMANCE_SKIP:-}" ] || narrow+=(--skip="$CONFORMANCE_SKIP")
	mkdir -p "$results/$pass"
	log "$pass pass: labels '$labels' ${narrow[*]} (log: $results/$pass/e2e.log)"
	"$dir/ginkgo" "${par[@]}" --timeout=8h --label-filter="$labels" "${narrow[@]}" --no-color \
		"$dir/e2e.test" -- --kubeconfig="$KUBECONFIG" --kubectl-path="$bindir/kubectl" \
		--provider=skeleton --report-dir="$results/$pass" --disable-log-dump \
		>"$results/$pass/e2e.log" 2>&1 || rc=1
	"$(dirname "$0")/summary.sh" "$pass" "$results/$pass" || rc=1
done
exit $rc
