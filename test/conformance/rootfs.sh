#!/bin/sh
# Makes the Debian root filesystem the conformance images share
# (docs/conformance.md): upstream builds them on Alpine or debian-base from
# registries this machine cannot reach, so the tools their specs call (sh,
# bash, dig, curl, nc, ip, ss, socat, iperf, ipcs, nginx) come from Debian's
# packages here. One root for all of them: packed as the first layer of
# each image, it is stored once by containerd.
#
#   test/conformance/rootfs.sh DIR
set -eu
[ "$(id -u)" = 0 ] || { echo "rootfs.sh: run as root (debootstrap)" >&2; exit 1; }
dir=${1:?usage: rootfs.sh DIR}
tmp=$dir.tmp
rm -rf "$tmp"
debootstrap --variant=minbase \
	--include=bash,dnsutils,curl,netcat-openbsd,iproute2,socat,iperf,util-linux,procps,nginx-light,ca-certificates \
	bookworm "$tmp" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$dir.log" 2>&1 ||
	{ echo "rootfs.sh: debootstrap failed; see $dir.log" >&2; exit 1; }

# agnhost's image: a user and group specs look for by name and id
# (SupplementalGroups with groups defined in the image), and netexec's
# upload folder.
chroot "$tmp" groupadd -g 50000 group-defined-in-image
chroot "$tmp" useradd -u 1000 -U -G group-defined-in-image -M user-defined-in-image
mkdir -p "$tmp/uploads"

# nginx as upstream's nginx image runs it: Debian's default site serves the
# stock page on port 80; logs go to the container's output.
ln -sf /dev/stdout "$tmp/var/log/nginx/access.log"
ln -sf /dev/stderr "$tmp/var/log/nginx/error.log"

# What an image does not need: package caches and lists, docs, manuals,
# locales; and the device nodes debootstrap made (a container gets its own).
rm -rf "$tmp"/var/cache/apt/* "$tmp"/var/lib/apt/lists/* "$tmp"/usr/share/doc/* \
	"$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/var/log/*.log "$tmp"/var/log/apt/*
find "$tmp/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$tmp/dev" -mindepth 1 -delete
rm -rf "$dir"
mv "$tmp" "$dir"
