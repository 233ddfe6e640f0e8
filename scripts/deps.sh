#!/bin/sh
# The Debian packages kubling's build (`deps.sh build`) or its tests
# (`deps.sh test`) need: installed when run as root, named (with the command
# that installs them) otherwise. `make build` and .ci/run both use it.
set -eu

build="gcc libc6-dev pkg-config make git"
# gcc, libc6-dev              cgo (SQLite through kine; runc)
# pkg-config                  runc, built static with seccomp, for the payload
#                             (libseccomp is Debian's, unpacked by the build)
# make, git                   the build
test="$build xz-utils iptables iproute2 util-linux procps busybox-static ca-certificates docker.io debootstrap debian-archive-keyring postgresql mariadb-server etcd-server"
# xz-utils                    install.sh's tests: xz release artifacts
# iptables                    kube-proxy and the CNI plugins at run time
# iproute2, util-linux        e2e: host routes, interfaces, mounts
# procps                      kubling-killall.sh (pgrep)
# busybox-static              e2e: the busybox test image
# ca-certificates             the Go module proxy over https
# docker.io                   multi-node e2e: nodes as containers
# debootstrap, debian-archive-keyring
#                             multi-node e2e: the node image's Debian base
# postgresql, mariadb-server, etcd-server
#                             e2e: external datastores, run by the tests as
#                             local processes on loopback (not as services)
conformance="$test curl bzip2"
# curl, bzip2                 make conformance: upstream BusyBox's source
#                             from Debian's archive (test/conformance/busybox.sh)

release="$build xz-utils gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static"
# gcc-*-linux-gnu*, libc6-dev-*-cross
#                             cgo for arm64 and armv7 (SQLite, runc)
# xz-utils                    the release's xz artifacts
# qemu-user-static            make test-arm: the arm builds run here, emulated
# and dpkg's foreign architectures arm64 and armhf, so apt can fetch their
# packages for the payload (libseccomp, iptables; unpacked, not installed)

foreign=
case "${1:-build}" in
build) packages=$build ;;
test) packages=$test ;;
conformance) packages=$conformance ;;
release) packages=$release foreign="arm64 armhf" ;;
*) echo "usage: $0 build|test|conformance|release" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system; make sure these (or your system's equivalents) are installed: $packages" >&2
	exit 0
fi
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
add_arch=""
for a in $foreign; do
	dpkg --print-foreign-architectures | grep -qx "$a" || add_arch="$add_arch $a"
done
[ -z "$missing$add_arch" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	[ -n "$add_arch" ] && echo "dpkg lacks the architectures$add_arch; add them with: sudo dpkg --add-architecture <arch> && sudo apt-get update" >&2
	[ -n "$missing" ] && echo "missing Debian packages:$missing; install them with: sudo apt-get install$missing" >&2
	exit 1
fi
for a in $add_arch; do
	echo "adding dpkg architecture $a"
	dpkg --add-architecture "$a"
done
[ -z "$missing" ] && { apt-get update -qq; exit 0; }
echo "installing:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
