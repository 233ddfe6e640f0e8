#!/bin/sh
# debian-root.sh ARCH DIR PACKAGE...: downloads Debian's binary packages for
# ARCH (amd64, arm64, armhf) with apt and unpacks them, as files only, into
# DIR (nothing is installed). The payload's bundled programs (iptables) come
# from there: payload/cmd/elfbundle picks the files and the libraries they
# need. A foreign ARCH needs it added to dpkg first (`make release` does).
set -eu
arch=$1 dir=$2
shift 2
debs="$dir.debs"
rm -rf "$dir" "$debs" "$dir.versions"
mkdir -p "$dir" "$debs"
pkgs=
for p in "$@"; do pkgs="$pkgs $p:$arch"; done
# shellcheck disable=SC2086 # one word a package
if ! (cd "$debs" && apt-get download -q $pkgs >/dev/null 2>&1); then
	# Package lists missing or stale (a fresh machine): refresh them once.
	if [ "$(id -u)" != 0 ]; then
		echo "debian-root.sh: apt-get download$pkgs failed; run 'sudo apt-get update' and build again" >&2
		exit 1
	fi
	apt-get update -qq
	(cd "$debs" && apt-get download -q $pkgs >/dev/null)
fi
for deb in "$debs"/*.deb; do
	dpkg-deb -x "$deb" "$dir"
	# What went in, for the payload's record (the versions a user can ask about).
	dpkg-deb -f "$deb" Package Version Architecture | sed 's/^[^:]*: //' | paste -sd' ' >>"$dir.versions"
done
rm -rf "$debs"
