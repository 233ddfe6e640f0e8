#!/bin/sh
# Stops this installation's kubling and everything it started on this host:
# the kubling process, containerd, every pod (shims and their containers),
# and removes kubling's mounts, network interfaces, network namespaces and
# iptables rules. Data (datastore, certificates, images) stays; uninstall
# removes it. KUBLING_DATA_DIR selects the installation by its data dir
# (default /var/lib/kubling).
#
# Only this installation's processes are stopped: those running in this
# mount namespace (not in a container on this host, as a kubling node of a
# multi-node test or a k3d-like cluster is) whose data dir is this one (a
# kubling with another --data-dir is left alone).
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

# clean_path ABSOLUTE_PATH: the path without //, /./, /../ and a trailing /
# (what Go's filepath.Clean makes of it, which is what kubling uses).
clean_path() {
	_cp_out=
	_cp_ifs=$IFS
	IFS=/
	set -f
	for _cp_c in $1; do
		case $_cp_c in
		"" | .) ;;
		..) _cp_out=${_cp_out%/*} ;;
		*) _cp_out=$_cp_out/$_cp_c ;;
		esac
	done
	set +f
	IFS=$_cp_ifs
	printf '%s\n' "${_cp_out:-/}"
}

# resolve PATH: PATH with every symlink followed (as /proc shows paths), or
# PATH itself where it cannot be (BusyBox resolves only existing paths).
resolve() {
	_rs=$(realpath -m -- "$1" 2>/dev/null) && [ -n "$_rs" ] && { printf '%s\n' "$_rs"; return; }
	_rs=$(readlink -f "$1" 2>/dev/null) && [ -n "$_rs" ] && { printf '%s\n' "$_rs"; return; }
	printf '%s\n' "$1"
}

# data_dir_problem DIR: prints why DIR must not be a data dir (uninstall
# deletes it), nothing when it may be one. install.sh, kubling-uninstall.sh
# and kubling-killall.sh have the same function (scripts_test.go checks it).
data_dir_problem() {
	case $1 in
	"") echo "the data dir is empty"; return ;;
	*[[:cntrl:]]*) echo "the data dir contains a newline or another control character"; return ;;
	/*) ;;
	*) echo "the data dir $1 is not an absolute path"; return ;;
	esac
	_dp_clean=$(clean_path "$1")
	# Through symlinks too: rm and a mount point's emptying would follow them.
	_dp_real=$(resolve "$_dp_clean")
	for _dp in "$_dp_clean" "$_dp_real"; do
		case $_dp in
		/ | /bin | /boot | /dev | /efi | /etc | /etc/* | /home | /lib | /lib32 | /lib64 | /libx32 | /media | /mnt | /nix | /opt | \
			/proc | /proc/* | /root | /run | /sbin | /snap | /srv | /sys | /sys/* | /tmp | /usr | /var) ;;
		*)
			# and their direct children: /var/lib, /home/alice, /usr/local/bin, …
			case ${_dp%/*} in /dev | /home | /usr | /usr/local | /var) ;; *) continue ;; esac
			;;
		esac
		if [ "$_dp" = "$_dp_clean" ]; then
			echo "refusing the data dir $1: $_dp is a system folder (give kubling a folder of its own, such as /var/lib/kubling)"
		else
			echo "refusing the data dir $1: it leads to $_dp, a system folder (give kubling a folder of its own, such as /var/lib/kubling)"
		fi
		return
	done
}

# mount_points: the mount points of this mount namespace, one a line, as
# paths (/proc/self/mounts writes space, tab and backslash as \040, \011
# and \134; a newline stays \012, so such a path matches none of ours).
mount_points() {
	awk '
	function unescape(s,   out, i, e) {
		out = ""
		while ((i = index(s, "\\")) > 0) {
			e = substr(s, i + 1, 3)
			out = out substr(s, 1, i - 1)
			if (e == "040") out = out " "
			else if (e == "011") out = out "\t"
			else if (e == "134") out = out "\\"
			else { out = out "\\"; s = substr(s, i + 1); continue }
			s = substr(s, i + 4)
		}
		return out s
	}
	{ print unescape($2) }' /proc/self/mounts
}

# mounts_under PREFIX: the mount points whose path starts with PREFIX and
# goes on (strictly below a folder: "DIR/"), deepest first.
mounts_under() {
	mount_points | P=$1 awk 'length($0) > length(ENVIRON["P"]) && substr($0, 1, length(ENVIRON["P"])) == ENVIRON["P"]' | sort -r
}

# install.sh writes this installation's data dir and service (KILLALL_*)
# above this script's text; KUBLING_DATA_DIR names another installation.
KILLALL_DATA_DIR=${KILLALL_DATA_DIR:-/var/lib/kubling}
kubling_dirs "${KUBLING_DATA_DIR:-$KILLALL_DATA_DIR}"
problem=$(data_dir_problem "$DATA_DIR")
if [ -n "$problem" ]; then
	echo "kubling-killall.sh: $problem; nothing stopped" >&2
	exit 1
fi
REAL_DATA_DIR=$(resolve "$DATA_DIR")
SELF_MNT=$(readlink /proc/self/ns/mnt 2>/dev/null) || SELF_MNT=
SELF_ROOT=$(readlink /proc/self/root 2>/dev/null) || SELF_ROOT=
if [ -z "$SELF_MNT" ] || [ -z "$SELF_ROOT" ]; then
	echo "kubling-killall.sh: cannot read /proc/self/ns/mnt, so cannot tell this host's processes from containers'; nothing stopped" >&2
	exit 1
fi

# on_this_host PID: PID runs in this mount namespace and root, not in a
# container (its own mount namespace) nor a chroot.
on_this_host() {
	[ "$(readlink "/proc/$1/ns/mnt" 2>/dev/null)" = "$SELF_MNT" ] &&
		[ "$(readlink "/proc/$1/root" 2>/dev/null)" = "$SELF_ROOT" ]
}

# holds_data_dir PID: PID has the data dir open (a running kubling keeps its
# data dir open: its lock).
holds_data_dir() {
	for _hd_fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$_hd_fd" 2>/dev/null)" = "$REAL_DATA_DIR" ] && return 0
	done
	return 1
}

# own_kubling PID: PID is a `kubling server|agent` process (by executable
# name and arguments, not by any command line mentioning them) of this
# installation: on this host, and using this data dir as kubling picks it:
# its last --data-dir (-d) flag, else KUBLING_DATA_DIR in its environment,
# else the default /var/lib/kubling (or, from a config file, the data dir it
# holds open); a relative one from its working directory.
own_kubling() {
	on_this_host "$1" || return 1
	_ok_given=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | awk '
		NR == 1 { n = split($0, p, "/"); if (p[n] != "kubling") bad = 1; next }
		NR == 2 { if ($0 != "server" && $0 != "agent") bad = 1; next }
		bad || stop { next }
		want { d = "F" $0; want = 0; next }
		$0 == "--" { stop = 1; next }
		/^--?(data-dir|d)=/ { w = $0; sub(/^--?(data-dir|d)=/, "", w); d = "F" w; next }
		/^--?(data-dir|d)$/ { want = 1 }
		END { if (bad || NR < 2) exit 1; print (d == "" ? "N" : d) }') || return 1
	case $_ok_given in
	F*) _ok_dir=${_ok_given#F} ;;
	*)
		_ok_dir=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/environ" | awk 'sub(/^KUBLING_DATA_DIR=/, "") { print "E" $0; exit }')
		case $_ok_dir in
		E*) _ok_dir=${_ok_dir#E} ;;
		*)
			holds_data_dir "$1" && return 0
			_ok_dir=/var/lib/kubling
			;;
		esac
		;;
	esac
	case $_ok_dir in
	/*) ;;
	*)
		_ok_cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
		_ok_dir=$_ok_cwd/$_ok_dir
		;;
	esac
	_ok_dir=$(clean_path "$_ok_dir")
	[ "$_ok_dir" = "$DATA_DIR" ] || [ "$(resolve "$_ok_dir")" = "$REAL_DATA_DIR" ]
}

# kubling_pids: this installation's kubling processes.
kubling_pids() {
	for _kp in /proc/[0-9]*; do
		own_kubling "${_kp#/proc/}" && echo "${_kp#/proc/}"
	done
}

# payload_pids NAME: processes on this host whose executable is NAME (a
# pattern) of this data dir's payload, <data-dir>/data/<version>/bin/NAME
# (" (deleted)" once that version folder is gone).
payload_pids() {
	for _pp in /proc/[0-9]*; do
		_pp_exe=$(readlink "$_pp/exe" 2>/dev/null) || continue
		_pp_exe=${_pp_exe% (deleted)}
		for _pp_dir in "$DATA_DIR" "$REAL_DATA_DIR"; do
			case $_pp_exe in "$_pp_dir"/data/*) ;; *) continue ;; esac
			case ${_pp_exe#"$_pp_dir"/data/} in */*/*/* | /*) continue ;; */bin/$1) ;; *) continue ;; esac
			on_this_host "${_pp#/proc/}" && echo "${_pp#/proc/}"
			break
		done
	done
}

# descendants PID: every process below PID (a pod's containers, whichever
# namespaces they run in).
descendants() {
	for child in $(pgrep -P "$1" 2>/dev/null); do
		descendants "$child"
		echo "$child"
	done
}

# host_kubling PID: PID is a `kubling server|agent` on this host, of any
# data dir.
host_kubling() {
	on_this_host "$1" || return 1
	tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | awk '
		NR == 1 { n = split($0, p, "/"); if (p[n] != "kubling") exit 1; next }
		NR == 2 { ok = ($0 == "server" || $0 == "agent"); exit }
		END { exit !ok }'
}

# 0. The installation's service, so its init system does not start kubling
# again while this script cleans up (only when stopping that installation).
_installed=$(clean_path "$KILLALL_DATA_DIR")
if [ -n "${KILLALL_SERVICE_NAME:-}" ] && [ "$_installed" = "$DATA_DIR" ]; then
	case ${KILLALL_SERVICE_SYSTEM:-} in
	systemd) command -v systemctl >/dev/null 2>&1 && systemctl stop "$KILLALL_SERVICE_NAME" 2>/dev/null ;;
	openrc) command -v rc-service >/dev/null 2>&1 && rc-service "$KILLALL_SERVICE_NAME" stop >/dev/null 2>&1 ;;
	esac
fi

# 1. kubling itself (server or agent), then containerd.
pids=$(kubling_pids)
for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
for _ in 1 2 3 4 5 6 7 8 9 10; do
	alive=
	for pid in $pids; do own_kubling "$pid" && alive="$alive $pid"; done
	pids=$alive
	[ -z "$pids" ] && break
	sleep 1
done
for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
for pid in $(payload_pids containerd); do kill -KILL "$pid" 2>/dev/null; done

# 2. Pods: each shim of this data dir's payload with every process below it
# (the containers).
for pid in $(payload_pids 'containerd-shim*'); do
	for child in $(descendants "$pid"); do kill -KILL "$child" 2>/dev/null; done
	kill -KILL "$pid" 2>/dev/null
done
sleep 1

# The host's pod network (cni0, flannel, pod netns, iptables rules) is one
# for every kubling on this host: while another one runs, leave it.
others=
for _p in /proc/[0-9]*; do
	host_kubling "${_p#/proc/}" && others="$others ${_p#/proc/}"
done
shared=/run/netns/cni-
if [ -n "$others" ]; then
	echo "kubling-killall.sh: another kubling runs on this host (pid$others, another data dir); leaving the host's pod network (cni0, flannel, pod netns, iptables rules) to it" >&2
	shared=
fi

# 3. Mounts strictly below kubling's folders (never the folders themselves:
# the data dir may be a disk of its own), deepest first; pod netns mounts.
for prefix in "$RUN_DIR/" "$DATA_DIR/" "$REAL_DATA_DIR/" $shared; do
	mounts_under "$prefix" | while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
done
status=0
if [ -z "$others" ]; then
	rm -f /run/netns/cni-* 2>/dev/null

	# 4. Interfaces: pod veths (only those on kubling's bridge), the bridge,
	# flannel's devices.
	ip -o link show master cni0 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | while read -r v; do
		ip link delete "$v" 2>/dev/null
	done
	for dev in cni0 flannel.1 flannel-wg kube-ipvs0; do ip link delete "$dev" 2>/dev/null; done

	# 5. iptables rules of kube-proxy, the kubelet, the CNI plugins, flannel
	# and the NetworkPolicy controller (KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-*),
	# in whichever backends hold any (nft and legacy); tables without them are
	# left untouched. On a host without iptables, kubling's bundled commands
	# (written at its start, after the host's folders on PATH, as kubling has them).
	PATH=$PATH:$DATA_DIR/agent/bin
	for cmd in iptables ip6tables iptables-legacy ip6tables-legacy iptables-nft ip6tables-nft; do
		command -v "$cmd-save" >/dev/null 2>&1 || continue
		rules=$("$cmd-save" 2>/dev/null) || continue
		printf '%s\n' "$rules" | grep -q -E '(^:|-j |-A )(KUBE-|CNI-|FLANNEL-)' || continue
		printf '%s\n' "$rules" | grep -v -E '(^:|-A |-j )(KUBE-|CNI-|FLANNEL-)|-m comment --comment "?(kube|CNI|flannel)' | "$cmd-restore" || status=1
	done
	# kube-proxy's nftables mode keeps its rules in tables of its own.
	if command -v nft >/dev/null 2>&1; then
		for family in ip ip6; do
			if nft list table "$family" kube-proxy >/dev/null 2>&1; then
				nft delete table "$family" kube-proxy || status=1
			fi
		done
	fi
	# The NetworkPolicy controller's ipsets (kube-router's names), once no
	# rule refers to them; the host's or the bundled ipset.
	if command -v ipset >/dev/null 2>&1; then
		for set in $(ipset list -n 2>/dev/null | grep -E '^(inet6:)?KUBE-(SRC|DST)-'); do
			ipset destroy "$set" 2>/dev/null || status=1
		done
	fi
	rm -rf /run/flannel 2>/dev/null
fi

# 6. Runtime state (sockets, shim state) is recreated at start; never
# deleted through a mount that is still there.
if [ -n "$(mounts_under "$RUN_DIR/")" ]; then
	echo "kubling-killall.sh: mounts remain below $RUN_DIR; not deleting it (see /proc/self/mounts)" >&2
	status=1
else
	rm -rf "$RUN_DIR" 2>/dev/null
fi
exit $status
