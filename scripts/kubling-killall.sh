#!/bin/sh
# Stops kubling and everything it started on this host: the kubling process,
# containerd, every pod (shims and their containers), and removes kubling's
# mounts, network interfaces, network namespaces and iptables rules.
# Data (datastore, certificates, images) stays; uninstall removes it.
# KUBLING_DATA_DIR selects the data dir (default /var/lib/kubling).
set -u
[ "$(id -u)" = 0 ] || { echo "kubling-killall.sh: run as root" >&2; exit 1; }

# kubling_dirs DATA_DIR: sets DATA_DIR to its clean absolute form and
# RUN_DIR to kubling's runtime folder for it, as kubling itself names them
# (pkg/datadir; scripts_test.go checks they agree).
kubling_dirs() {
	DATA_DIR=$(realpath -m -s -- "$1" 2>/dev/null) || DATA_DIR=$1
	if [ "$DATA_DIR" = /var/lib/kubling ]; then
		RUN_DIR=/run/kubling
	else
		RUN_DIR="/run/kubling-$(printf %s "$DATA_DIR" | sha256sum | cut -c1-12)"
	fi
}
kubling_dirs "${KUBLING_DATA_DIR:-/var/lib/kubling}"

# pids_of PATTERN: processes whose executable lies under a kubling folder.
pids_of() {
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case "$exe" in $1) echo "${p#/proc/}" ;; esac
	done
}

# kubling_pids: running `kubling server|agent` processes (by executable name
# and arguments, not by matching any command line that mentions them).
kubling_pids() {
	for p in /proc/[0-9]*; do
		set -- $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)
		[ $# -ge 2 ] || continue
		case "$(basename "$1"):$2" in kubling:server|kubling:agent) echo "${p#/proc/}" ;; esac
	done
}

# descendants PID: every process below PID.
descendants() {
	for child in $(pgrep -P "$1" 2>/dev/null); do
		descendants "$child"
		echo "$child"
	done
}

# 1. kubling itself (server or agent; like k3s-killall, all of them), then containerd.
for pid in $(kubling_pids); do kill -TERM "$pid" 2>/dev/null; done
for _ in 1 2 3 4 5 6 7 8 9 10; do
	[ -z "$(kubling_pids)" ] && break
	sleep 1
done
for pid in $(kubling_pids); do kill -KILL "$pid" 2>/dev/null; done
for pid in $(pids_of "$DATA_DIR/data/*/bin/containerd"); do kill -KILL "$pid" 2>/dev/null; done

# 2. Pods: each shim of this data dir's payload with every process below it
# (the containers). A shim whose payload folder was replaced shows " (deleted)".
for pid in $(pids_of "$DATA_DIR/data/*/bin/containerd-shim-runc-v2*"); do
	for child in $(descendants "$pid"); do kill -KILL "$child" 2>/dev/null; done
	kill -KILL "$pid" 2>/dev/null
done
sleep 1

# 3. Mounts strictly below kubling's folders (never the folders themselves:
# the data dir may be a disk of its own), deepest first; pod netns mounts.
for root in "$RUN_DIR" "$DATA_DIR" /run/netns/cni-; do
	awk -v r="$root" '{ if (index($2, r) == 1 && $2 != r && $2 != r "/") print $2 }' /proc/self/mounts | sort -r | while read -r m; do
		case "$root" in */cni-) ;; *) case "$m" in "$root"/*) ;; *) continue ;; esac ;; esac
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
done
rm -f /run/netns/cni-* 2>/dev/null

# 4. Interfaces: pod veths (only those on kubling's bridge), the bridge,
# flannel's devices.
ip -o link show master cni0 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | while read -r v; do
	ip link delete "$v" 2>/dev/null
done
for dev in cni0 flannel.1 flannel-wg kube-ipvs0; do ip link delete "$dev" 2>/dev/null; done

# 5. iptables rules of kube-proxy, the kubelet, the CNI plugins and flannel,
# in whichever backends hold any (nft and legacy); tables without them are
# left untouched.
status=0
for cmd in iptables ip6tables iptables-legacy ip6tables-legacy iptables-nft ip6tables-nft; do
	command -v "$cmd-save" >/dev/null 2>&1 || continue
	rules=$("$cmd-save" 2>/dev/null) || continue
	printf '%s\n' "$rules" | grep -q -E '(^:|-j |-A )(KUBE-|CNI-|FLANNEL-)' || continue
	printf '%s\n' "$rules" | grep -v -E '(^:|-A |-j )(KUBE-|CNI-|FLANNEL-)|-m comment --comment "?(kube|CNI|flannel)' | "$cmd-restore" || status=1
done

# 6. Runtime state (sockets, shim state) is recreated at start.
rm -rf "$RUN_DIR" /run/flannel 2>/dev/null
exit $status
