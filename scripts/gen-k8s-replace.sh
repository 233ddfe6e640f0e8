#!/bin/sh
# Regenerates go.mod's replace block for Kubernetes' staging modules from
# k8s.io/kubernetes' own go.mod, so the versions are never hand-edited.
# Usage: scripts/gen-k8s-replace.sh [k8s-version]   (default: the one go.mod requires)
set -eu
cd "$(dirname "$0")/.."
k8s=${1:-$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' go.mod)}
staging=v0.${k8s#v1.}
gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
[ -f "$gomod" ] || { echo "cannot find go.mod of k8s.io/kubernetes@$k8s" >&2; exit 1; }
modules=$(awk '/=> \.\/staging\/src\//{print $1}' "$gomod")
args=""
for m in $modules; do args="$args -replace=$m=$m@$staging"; done
# shellcheck disable=SC2086
go mod edit $args
echo "replaced $(echo "$modules" | wc -l) staging modules with $staging"
