#!/bin/sh
# Docker for the multi-node tests, on a machine without an init system:
#   docker.sh start            start dockerd unless one answers already
#   docker.sh stop             stop the dockerd that `start` started
#   docker.sh base-image NAME [PACKAGES]
#                              build a node base image once (debootstrap),
#                              with extra comma-separated Debian packages
set -eu
state=build/multinode
mkdir -p "$state"

case "${1:-}" in
start)
	if docker info >/dev/null 2>&1; then exit 0; fi
	# kubling's tests reach containers on their own bridge network; Docker
	# need not rewrite the host's firewall for that.
	dockerd --iptables=false --ip-masq=false >"$state/dockerd.log" 2>&1 &
	echo $! >"$state/dockerd.pid"
	for _ in $(seq 60); do
		if docker info >/dev/null 2>&1; then exit 0; fi
		sleep 1
	done
	echo "dockerd did not start; see $state/dockerd.log" >&2
	tail -5 "$state/dockerd.log" >&2
	exit 1
	;;
stop)
	[ -f "$state/dockerd.pid" ] || exit 0
	pid=$(cat "$state/dockerd.pid")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	rm -f "$state/dockerd.pid"
	;;
base-image)
	name=$2
	extra=${3:+,$3}
	if docker image inspect "$name" >/dev/null 2>&1; then exit 0; fi
	# No registry is reachable: make Debian from its packages, as a minimal
	# host has it: no iptables (kubling brings its own), iproute2 and procps
	# for the tests' look inside.
	rootfs="$state/rootfs-$(echo "$name" | tr -c 'a-z0-9\n' '-')"
	rm -rf "$rootfs"
	debootstrap --variant=minbase --include=iproute2,procps,ca-certificates$extra \
		bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$state/debootstrap.log" 2>&1 ||
		{ echo "debootstrap failed; see $state/debootstrap.log" >&2; exit 1; }
	tar -C "$rootfs" -c . | docker import - "$name" >/dev/null
	rm -rf "$rootfs"
	;;
*)
	echo "usage: $0 start|stop|base-image NAME" >&2
	exit 2
	;;
esac
