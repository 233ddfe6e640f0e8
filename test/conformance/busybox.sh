#!/bin/sh
# Builds upstream BusyBox 1.37.0, static, for the suite's busybox:1.37.0-2
# image. Debian's busybox-static will not do: Debian reverts upstream's ash
# change that passes environment variables whose names are not shell names
# (a ConfigMap key "data-1" given with envFrom) on to commands, and the
# suite's ConfigMap and Secret specs check that `sh -c env` shows them. The
# source is Debian's copy of the upstream tarball (no other site is
# reachable here), checked against the hash in Debian's Sources index.
#
#   test/conformance/busybox.sh OUT_FILE
set -eu
out=$(realpath -m "${1:?usage: busybox.sh OUT_FILE}")
version=1.37.0
sha256=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsS --retry 3 -o "$work/src.tar.bz2" "$mirror/pool/main/b/busybox/busybox_$version.orig.tar.bz2"
echo "$sha256  $work/src.tar.bz2" | sha256sum -c --quiet - ||
	{ echo "busybox.sh: busybox_$version.orig.tar.bz2 does not match its hash" >&2; exit 1; }
tar -C "$work" -xjf "$work/src.tar.bz2"
cd "$work/busybox-$version"
make defconfig >/dev/null
# Static (the image has nothing else); tc does not build against current
# kernel headers (CBQ is gone) and no spec uses it.
sed -i 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/; s/^CONFIG_TC=y$/# CONFIG_TC is not set/' .config
make -j"$(nproc)" >build.log 2>&1 || { tail -20 build.log >&2; echo "busybox.sh: build failed" >&2; exit 1; }
./busybox --help >/dev/null
cp busybox "$out.tmp" && mv "$out.tmp" "$out"
