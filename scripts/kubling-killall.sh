#!/bin/sh
# Stops kubling and everything it started on this host: the kubling process,
# containerd, every pod (shims and their containers), and removes kubling's
# mounts, network interfaces, network namespaces and iptables rules.
# Data (datastore, certificates, images) stays; uninstall removes it.
# KUBLING_DATA_DIR selects the data dir (default /var/lib/kubling).
set -u
[ "$(id -u)" = 0 ] || { echo "kubling-killall.sh: run as root" >&2; exit 1; }
DATA_DIR=${KUBLING_DATA_DIR:-/var/lib/kubling}
RUN_DIR=/run/kubling

# pids_of PATTERN: processes whose executable lies under a kubling folder.
pids_of() {
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case "$exe" in $1) echo "${p#/proc/}" ;; esac
	done
}

# 1. kubling itself (server or agent), then containerd.
for pid in $(pgrep -f '(^|/)kubling (server|agent)' 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
sleep 1
for pid in $(pgrep -f '(^|/)kubling (server|agent)' 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
for pid in $(pids_of "$DATA_DIR/data/*/bin/containerd"); do kill -KILL "$pid" 2>/dev/null; done

# 2. Pods: each shim with its process group (the containers), then runc leftovers.
for pid in $(pids_of "$DATA_DIR/data/*/bin/containerd-shim-runc-v2"); do
	for child in $(pgrep -P "$pid" 2>/dev/null); do kill -KILL "$child" 2>/dev/null; done
	kill -KILL "$pid" 2>/dev/null
done
# Containers are children of their shims; any left (reparented) are found by cgroup.
for f in /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods*; do
	[ -e "$f" ] || continue
	find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -KILL "$pid" 2>/dev/null; done
done
sleep 1

# 3. Mounts under kubling's folders, deepest first.
for root in "$RUN_DIR" "$DATA_DIR" /run/netns; do
	awk -v r="$root/" '{ if (index($2"/", r) == 1) print $2 }' /proc/self/mounts | sort -r | while read -r m; do
		case "$m" in /run/netns/*) case "$m" in /run/netns/cni-*) ;; *) continue ;; esac ;; esac
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
done
rm -f /run/netns/cni-* 2>/dev/null

# 4. Interfaces: the bridge, flannel's VXLAN device, pod veths.
for dev in cni0 flannel.1 flannel-wg kube-ipvs0; do ip link delete "$dev" 2>/dev/null; done
ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | while read -r v; do
	case "$v" in veth*) ip link delete "$v" 2>/dev/null ;; esac
done

# 5. iptables rules of kube-proxy, the kubelet, the CNI plugins and flannel.
for cmd in iptables ip6tables; do
	command -v "$cmd-save" >/dev/null 2>&1 || continue
	"$cmd-save" | grep -v -E 'KUBE-|CNI-|FLANNEL-|cali:' | "$cmd-restore" 2>/dev/null
done

# 6. Runtime state (sockets, shim state) is recreated at start.
rm -rf "$RUN_DIR" /run/flannel 2>/dev/null
exit 0
