#!/bin/sh
# kubling installer.
#
#   curl -sfL <url>/install.sh | sh -                          # a server
#   curl -sfL <url>/install.sh | KUBLING_URL=https://10.0.0.1:6443 KUBLING_TOKEN=KL1… sh -   # an agent
#
# Environment:
#   KUBLING_URL                 set: install an agent joining that server
#   KUBLING_TOKEN, KUBLING_TOKEN_FILE   the join token (an agent needs one)
#   KUBLING_*                   any other kubling setting; saved in the service's env file
#   INSTALL_KUBLING_EXEC        extra flags for `kubling server|agent`
#   INSTALL_KUBLING_VERSION     release to download (default: the channel's)
#   INSTALL_KUBLING_CHANNEL     stable (default) or latest
#   INSTALL_KUBLING_RELEASE_URL where releases live (default below)
#   INSTALL_KUBLING_BIN         install this local binary instead of downloading
#   INSTALL_KUBLING_SKIP_DOWNLOAD  use the kubling already in the bin dir
#   INSTALL_KUBLING_BIN_DIR     where to install (default /usr/local/bin, or /opt/bin
#                               when /usr/local is read-only)
#   INSTALL_KUBLING_NAME        service name (default kubling, or kubling-agent)
#   INSTALL_KUBLING_SKIP_ENABLE do not enable the service at boot
#   INSTALL_KUBLING_SKIP_START  do not start the service
set -eu

RELEASE_URL=${INSTALL_KUBLING_RELEASE_URL:-https://github.com/kubling/kubling/releases}

info() { echo "[kubling] $*"; }
fatal() {
	echo "[kubling] error: $*" >&2
	exit 1
}

# --- what to install --------------------------------------------------------

setup_mode() {
	if [ -n "${KUBLING_URL:-}" ]; then
		MODE=agent
		if [ -z "${KUBLING_TOKEN:-}" ] && [ -z "${KUBLING_TOKEN_FILE:-}" ]; then
			fatal "KUBLING_URL is set (agent install) but neither KUBLING_TOKEN nor KUBLING_TOKEN_FILE is"
		fi
		case "$KUBLING_URL" in https://*) ;; *) fatal "KUBLING_URL must start with https:// (got $KUBLING_URL)" ;; esac
	else
		MODE=server
	fi
	NAME=${INSTALL_KUBLING_NAME:-kubling}
	if [ "$MODE" = agent ] && [ -z "${INSTALL_KUBLING_NAME:-}" ]; then
		NAME=kubling-agent
	fi
	case "$NAME" in *[!a-z0-9_-]* | "") fatal "INSTALL_KUBLING_NAME must be letters, digits, '-' or '_'" ;; esac
	DATA_DIR=${KUBLING_DATA_DIR:-/var/lib/kubling}
}

setup_bin_dir() {
	if [ -n "${INSTALL_KUBLING_BIN_DIR:-}" ]; then
		BIN_DIR=$INSTALL_KUBLING_BIN_DIR
	elif touch /usr/local/.kubling-write-test 2>/dev/null; then
		rm -f /usr/local/.kubling-write-test
		BIN_DIR=/usr/local/bin
	else
		BIN_DIR=/opt/bin # /usr/local is read-only (Flatcar, some appliances)
	fi
	mkdir -p "$BIN_DIR"
}

check_root() {
	[ "$(id -u)" = 0 ] || fatal "run as root (curl … | sudo sh -)"
}

# --- the binary ---------------------------------------------------------------

download() { # URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -qO "$2" "$1"
	else
		fatal "neither curl nor wget is installed"
	fi
}

arch() {
	case "$(uname -m)" in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	armv7l | armv7*) echo arm ;;
	*) fatal "unsupported architecture $(uname -m)" ;;
	esac
}

install_binary() {
	target="$BIN_DIR/kubling"
	if [ -n "${INSTALL_KUBLING_BIN:-}" ]; then
		[ -f "$INSTALL_KUBLING_BIN" ] || fatal "INSTALL_KUBLING_BIN=$INSTALL_KUBLING_BIN is not a file"
		info "installing $INSTALL_KUBLING_BIN to $target"
		cp "$INSTALL_KUBLING_BIN" "$target.tmp"
	elif [ -n "${INSTALL_KUBLING_SKIP_DOWNLOAD:-}" ]; then
		[ -x "$target" ] || fatal "INSTALL_KUBLING_SKIP_DOWNLOAD is set but $target is missing"
		info "using the kubling already at $target"
		return
	else
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		version=${INSTALL_KUBLING_VERSION:-}
		if [ -z "$version" ]; then
			channel=${INSTALL_KUBLING_CHANNEL:-stable}
			download "$RELEASE_URL/channels/$channel" "$tmp/version" || fatal "cannot read channel $channel from $RELEASE_URL"
			version=$(tr -d ' \n' <"$tmp/version")
		fi
		a=$(arch)
		info "downloading kubling $version ($a)"
		download "$RELEASE_URL/download/$version/kubling-$a" "$tmp/kubling" || fatal "download of kubling $version failed"
		download "$RELEASE_URL/download/$version/sha256sum-$a.txt" "$tmp/sums" || fatal "download of the checksum for $version failed"
		want=$(awk -v f="kubling-$a" '$2 == f || $2 == "*"f {print $1}' "$tmp/sums")
		got=$(sha256sum "$tmp/kubling" | cut -d' ' -f1)
		[ -n "$want" ] && [ "$want" = "$got" ] || fatal "checksum mismatch for kubling-$a (want ${want:-none}, got $got)"
		cp "$tmp/kubling" "$target.tmp"
	fi
	chmod 755 "$target.tmp"
	"$target.tmp" --version >/dev/null 2>&1 || {
		rm -f "$target.tmp"
		fatal "the kubling binary does not run on this machine"
	}
	mv -f "$target.tmp" "$target"
}

install_links_and_scripts() {
	for cmd in kubectl crictl ctr; do
		if [ -L "$BIN_DIR/$cmd" ] || ! command -v "$cmd" >/dev/null 2>&1; then
			ln -sf kubling "$BIN_DIR/$cmd"
			info "linked $BIN_DIR/$cmd to kubling"
		else
			info "$cmd exists at $(command -v "$cmd"); not linking it"
		fi
	done
	"$BIN_DIR/kubling" internal-script killall >"$BIN_DIR/kubling-killall.sh"
	chmod 755 "$BIN_DIR/kubling-killall.sh"
	{
		echo "#!/bin/sh"
		echo "# Written by kubling's install.sh."
		echo "BIN_DIR='$BIN_DIR'"
		echo "SERVICE_NAME='$NAME'"
		echo "SERVICE_SYSTEM='$SYSTEM'"
		echo "DATA_DIR='$DATA_DIR'"
		"$BIN_DIR/kubling" internal-script uninstall
	} >"$BIN_DIR/kubling-uninstall.sh"
	chmod 755 "$BIN_DIR/kubling-uninstall.sh"
}

# --- the service ----------------------------------------------------------------

detect_system() {
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		SYSTEM=systemd
	elif command -v openrc-run >/dev/null 2>&1 || [ -x /sbin/openrc-run ]; then
		SYSTEM=openrc
	else
		SYSTEM=none
	fi
}

# quote VALUE for an env file line.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

write_env_file() {
	mkdir -p /etc/kubling
	ENV_FILE=/etc/kubling/$NAME.env
	umask 077
	{
		echo "# Settings of the $NAME service, written by install.sh."
		env | grep -E '^KUBLING_[A-Z0-9_]+=' | while IFS='=' read -r key value; do
			echo "$key=$(quote "$value")"
		done
		for p in HTTP_PROXY HTTPS_PROXY http_proxy https_proxy; do
			eval "v=\${$p:-}"
			[ -n "$v" ] && echo "$p=$(quote "$v")"
		done
		if [ -n "${HTTP_PROXY:-}${HTTPS_PROXY:-}${http_proxy:-}${https_proxy:-}" ]; then
			# Cluster traffic must never go through the proxy.
			no=${NO_PROXY:-${no_proxy:-}}
			cluster="${KUBLING_CLUSTER_CIDR:-10.42.0.0/16},${KUBLING_SERVICE_CIDR:-10.43.0.0/16},127.0.0.1,localhost,.svc,.cluster.local"
			echo "NO_PROXY=$(quote "${no:+$no,}$cluster")"
		fi
	} >"$ENV_FILE"
	umask 022
	chmod 600 "$ENV_FILE"
}

exec_line() {
	echo "$BIN_DIR/kubling $MODE${INSTALL_KUBLING_EXEC:+ $INSTALL_KUBLING_EXEC}"
}

write_systemd_unit() {
	cat >"/etc/systemd/system/$NAME.service" <<UNIT
[Unit]
Description=kubling ($MODE)
Documentation=https://github.com/kubling/kubling
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-$ENV_FILE
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=$(exec_line)
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
UNIT
	systemctl daemon-reload
	if [ -z "${INSTALL_KUBLING_SKIP_ENABLE:-}" ]; then
		systemctl enable "$NAME" >/dev/null
	fi
	if [ -z "${INSTALL_KUBLING_SKIP_START:-}" ]; then
		info "starting $NAME"
		systemctl restart "$NAME"
		STARTED=1
	fi
}

write_openrc_service() {
	cat >"/etc/init.d/$NAME" <<SERVICE
#!/sbin/openrc-run
description="kubling ($MODE)"
supervisor=supervise-daemon
command="$BIN_DIR/kubling"
command_args="$MODE${INSTALL_KUBLING_EXEC:+ $INSTALL_KUBLING_EXEC}"
output_log="/var/log/$NAME.log"
error_log="/var/log/$NAME.log"
respawn_delay=5
respawn_max=0

depend() {
	need net
	after firewall
}

start_pre() {
	set -a
	[ -f "$ENV_FILE" ] && . "$ENV_FILE"
	set +a
	modprobe br_netfilter 2>/dev/null || true
	modprobe overlay 2>/dev/null || true
}
SERVICE
	chmod 755 "/etc/init.d/$NAME"
	if [ -z "${INSTALL_KUBLING_SKIP_ENABLE:-}" ]; then
		rc-update add "$NAME" default >/dev/null
	fi
	if [ -z "${INSTALL_KUBLING_SKIP_START:-}" ]; then
		info "starting $NAME"
		rc-service "$NAME" restart
		STARTED=1
	fi
}

install_service() {
	STARTED=
	case "$SYSTEM" in
	systemd) write_systemd_unit ;;
	openrc) write_openrc_service ;;
	none)
		info "no systemd or OpenRC on this host: no service installed. Start kubling with:"
		echo "    set -a; . $ENV_FILE; set +a; $(exec_line)"
		;;
	esac
}

print_join_command() {
	[ "$MODE" = server ] || return 0
	token_file="$DATA_DIR/server/token"
	if [ -n "$STARTED" ]; then
		i=0
		while [ ! -s "$token_file" ] && [ $i -lt 120 ]; do
			sleep 1
			i=$((i + 1))
		done
	fi
	ip=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')
	port=${KUBLING_HTTPS_LISTEN_PORT:-6443}
	# Never the token itself: install output ends up in logs and terminals.
	if [ -s "$token_file" ]; then
		info "join agents with (<token>: the content of $token_file on this server, sudo cat it):"
	else
		info "once the server has started, join agents with (<token>: the content of $token_file on this server):"
	fi
	echo "    curl -sfL <url>/install.sh | KUBLING_URL=https://${ip:-<server-ip>}:$port KUBLING_TOKEN=<token> sh -"
}

check_root
setup_mode
setup_bin_dir
detect_system
install_binary
install_links_and_scripts
write_env_file
install_service
print_join_command
info "done: $MODE installed ($SYSTEM); uninstall with $BIN_DIR/kubling-uninstall.sh"
