# Body of kubling-uninstall.sh: install.sh writes the installed script as a
# few settings (BIN_DIR, SERVICE_NAME, SERVICE_SYSTEM, DATA_DIR) followed by
# this text (printed by `kubling internal-script uninstall`).
#
# Removes kubling from this host: stops the service and every pod
# (kubling-killall.sh), then removes the service, the data dir, /etc/kubling,
# its runtime folder (/run/kubling), the binary, its symlinks and these scripts.
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
kubling_dirs "$DATA_DIR"

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

# Never delete through a mount that is still there: rm would descend into it.
if grep -q " $DATA_DIR[/ ]" /proc/mounts 2>/dev/null || grep -q " $RUN_DIR[/ ]" /proc/mounts 2>/dev/null; then
	echo "kubling-uninstall.sh: mounts remain below $DATA_DIR or $RUN_DIR; not deleting them (see /proc/mounts)" >&2
	exit 1
fi
rm -rf "$DATA_DIR" "$RUN_DIR" /etc/kubling

for link in kubectl crictl ctr; do
	target=$(readlink "$BIN_DIR/$link" 2>/dev/null) || continue
	case "$target" in kubling | "$BIN_DIR/kubling") rm -f "$BIN_DIR/$link" ;; esac
done
rm -f "$BIN_DIR/kubling" "$BIN_DIR/kubling-killall.sh" "$BIN_DIR/kubling-uninstall.sh"
echo "kubling is uninstalled"
