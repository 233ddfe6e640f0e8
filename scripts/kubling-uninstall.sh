# Body of kubling-uninstall.sh: install.sh writes the installed script as a
# few settings (BIN_DIR, SERVICE_NAME, SERVICE_SYSTEM, DATA_DIR) followed by
# this text (printed by `kubling internal-script uninstall`).
#
# Removes kubling from this host: stops the service and every pod
# (kubling-killall.sh), then removes the service, the data dir, /etc/kubling,
# its runtime folder (/run/kubling), the binary, its symlinks and these scripts.
# A data dir that is a mount point of its own (a volume) is emptied and kept.
set -u
[ "$(id -u)" = 0 ] || { echo "kubling-uninstall.sh: run as root" >&2; exit 1; }

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

# is_mount_point DIR: DIR is a mount point of this mount namespace.
is_mount_point() {
	mount_points | D=$1 awk '$0 == ENVIRON["D"] { found = 1 } END { exit !found }'
}

# remove_dir DIR: removes DIR, or when it is a mount point of its own (by its
# path with symlinks followed, as /proc shows it), everything in it.
remove_dir() {
	_rd_real=$(resolve "$1")
	if is_mount_point "$_rd_real"; then
		for _rd_f in "$_rd_real"/* "$_rd_real"/.[!.]* "$_rd_real"/..?*; do
			if [ -e "$_rd_f" ] || [ -L "$_rd_f" ]; then rm -rf -- "$_rd_f"; fi
		done
		echo "kubling-uninstall.sh: kept $1 (a mount point of its own) and removed everything in it"
	else
		rm -rf -- "$1"
	fi
}

# Nothing is touched for a data dir that is not one kubling may delete.
problem=$(data_dir_problem "${DATA_DIR:-}")
if [ -n "$problem" ]; then
	echo "kubling-uninstall.sh: $problem; nothing removed" >&2
	exit 1
fi
kubling_dirs "$DATA_DIR"
REAL_DATA_DIR=$(resolve "$DATA_DIR")

case "$SERVICE_SYSTEM" in
systemd)
	systemctl stop "$SERVICE_NAME" 2>/dev/null
	systemctl disable "$SERVICE_NAME" 2>/dev/null
	rm -f "/etc/systemd/system/$SERVICE_NAME.service"
	systemctl daemon-reload 2>/dev/null
	;;
openrc)
	rc-service "$SERVICE_NAME" stop 2>/dev/null
	rc-update del "$SERVICE_NAME" default 2>/dev/null
	rm -f "/etc/init.d/$SERVICE_NAME"
	;;
esac

if [ -x "$BIN_DIR/kubling-killall.sh" ]; then
	KUBLING_DATA_DIR="$DATA_DIR" "$BIN_DIR/kubling-killall.sh"
fi

# Unmount what is still mounted strictly below the data dir and the runtime
# folder (killall did, when it was there), deepest first; never the data dir
# itself, which may be a volume of its own.
for prefix in "$RUN_DIR/" "$DATA_DIR/" "$REAL_DATA_DIR/"; do
	mounts_under "$prefix" | while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
done
# Never delete through a mount that is still there: rm would descend into it.
left=$(for prefix in "$RUN_DIR/" "$DATA_DIR/" "$REAL_DATA_DIR/"; do mounts_under "$prefix"; done | head -n 1)
if [ -n "$left" ]; then
	echo "kubling-uninstall.sh: mounts remain below $DATA_DIR or $RUN_DIR ($left); not deleting them (see /proc/self/mounts)" >&2
	exit 1
fi
remove_dir "$DATA_DIR"
remove_dir "$RUN_DIR"
rm -rf /etc/kubling

for link in kubectl crictl ctr; do
	target=$(readlink "$BIN_DIR/$link" 2>/dev/null) || continue
	case "$target" in kubling | "$BIN_DIR/kubling") rm -f "$BIN_DIR/$link" ;; esac
done
rm -f "$BIN_DIR/kubling" "$BIN_DIR/kubling-killall.sh" "$BIN_DIR/kubling-uninstall.sh"
echo "kubling is uninstalled"
