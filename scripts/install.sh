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
#   INSTALL_KUBLING_EXEC        extra flags for `kubling server|agent`, split into
#                               words as sh splits them ('…', "…" and \ quote), but
#                               nothing in it is expanded: $, `, %, * reach kubling
#                               as written; newlines and control characters are refused
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
warn() { echo "[kubling] warning: $*" >&2; }
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
	setup_exec
	setup_data_dir
}

# setup_exec: EXEC_WORDS, the words of INSTALL_KUBLING_EXEC (see exec_words).
setup_exec() {
	case "${INSTALL_KUBLING_EXEC:-}" in *[[:cntrl:]]*)
		fatal "INSTALL_KUBLING_EXEC must not contain newlines, tabs or other control characters"
		;;
	esac
	EXEC_WORDS=$(exec_words) || fatal "INSTALL_KUBLING_EXEC has an unterminated quote or ends with a backslash"
	_se_flag=$(exec_secret)
	if [ -n "$_se_flag" ]; then
		warn "INSTALL_KUBLING_EXEC gives $_se_flag a secret: it goes into the service's unit, which every user can read; give it as a KUBLING_* variable instead (kept in the root-only env file), or as --token-file"
	fi
}

# exec_secret: the first flag in EXEC_WORDS whose value is a secret (a
# token, a datastore endpoint with a password), if any.
exec_secret() {
	printf '%s\n' "$EXEC_WORDS" | awk '
		function secretURL(v) { return v ~ /:[^\/@]*@/ || v ~ /[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]=/ }
		{ w = substr($0, 2) }
		next_is != "" { if (next_is != "--datastore-endpoint" || secretURL(w)) { print next_is; exit } next_is = ""; next }
		w ~ /^(--token|-t|--agent-token)$/ { next_is = w; next }
		w ~ /^(--token|-t|--agent-token)=/ { sub(/=.*/, "", w); print w; exit }
		w == "--datastore-endpoint" { next_is = w; next }
		w ~ /^--datastore-endpoint=/ { v = w; sub(/^[^=]*=/, "", v); if (secretURL(v)) { print "--datastore-endpoint"; exit } }
	'
}

# exec_words: the words of INSTALL_KUBLING_EXEC, one a line, each after a "="
# (so that an empty word, written '' or "", survives). They are split the way
# sh splits words: spaces separate them, '…' quotes everything, "…" everything
# but \\, \", \$ and \` (backslash escapes them), and \ outside quotes escapes
# the next character. Nothing is expanded: $(…), `…`, $VAR, globs and % stay
# as written. Fails on an unterminated quote or a trailing backslash.
exec_words() {
	printf '%s\n' "${INSTALL_KUBLING_EXEC:-}" | awk -v sq="'" -v dq='"' -v bs='\\' '
	{
		s = $0; n = length(s); w = ""; inword = 0; q = ""
		for (i = 1; i <= n; i++) {
			c = substr(s, i, 1)
			if (q == sq) {
				if (c == sq) q = ""; else w = w c
				continue
			}
			if (q == dq) {
				if (c == dq) { q = ""; continue }
				if (c == bs && i < n) {
					d = substr(s, i + 1, 1)
					if (d == bs || d == dq || d == "$" || d == "`") { w = w d; i++; continue }
				}
				w = w c
				continue
			}
			if (c == " ") {
				if (inword) print "=" w
				w = ""; inword = 0
				continue
			}
			inword = 1
			if (c == sq || c == dq) { q = c; continue }
			if (c == bs) {
				if (i == n) { bad = 1; break }
				i++; w = w substr(s, i, 1)
				continue
			}
			w = w c
		}
		if (q != "") bad = 1
		if (!bad && inword) print "=" w
	}
	END { exit bad }'
}

# setup_data_dir: DATA_DIR, the data dir kubling will use, as kubling picks
# it: the last --data-dir (-d) in INSTALL_KUBLING_EXEC, else KUBLING_DATA_DIR,
# else /var/lib/kubling. kubling-uninstall.sh deletes it, so a system folder,
# an empty or a relative path is refused here, before anything is installed.
setup_data_dir() {
	given=$(printf '%s\n' "$EXEC_WORDS" | awk '
		!/^=/ || stop { next }
		{ w = substr($0, 2) }
		want { d = "=" w; want = 0; next }
		w == "--" { stop = 1; next }
		w ~ /^--?(data-dir|d)=/ { sub(/^--?(data-dir|d)=/, "", w); d = "=" w; next }
		w ~ /^--?(data-dir|d)$/ { want = 1 }
		END { if (want) d = "="; print d }')
	if [ -n "$given" ]; then
		DATA_DIR=${given#=}
		what="--data-dir in INSTALL_KUBLING_EXEC"
	elif [ -n "${KUBLING_DATA_DIR+set}" ]; then
		DATA_DIR=$KUBLING_DATA_DIR
		what=KUBLING_DATA_DIR
	else
		DATA_DIR=/var/lib/kubling
		what="the default data dir"
	fi
	problem=$(data_dir_problem "$DATA_DIR")
	[ -z "$problem" ] || fatal "$what: $problem"
	DATA_DIR=$(clean_path "$DATA_DIR")
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

setup_bin_dir() {
	if [ -n "${INSTALL_KUBLING_BIN_DIR:-}" ]; then
		BIN_DIR=$INSTALL_KUBLING_BIN_DIR
		# The path goes into the service (OpenRC evaluates its command line)
		# and the uninstall script: keep it plain.
		case "$BIN_DIR" in
		/*[!A-Za-z0-9_./+@:,=-]* | [!/]*) fatal "INSTALL_KUBLING_BIN_DIR must be an absolute path of letters, digits and _ . / + @ : , = - (got $BIN_DIR)" ;;
		esac
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

have() { command -v "$1" >/dev/null 2>&1; }

# listed SUMS FILE: sha256sum.txt SUMS has a line for FILE.
listed() { awk -v f="$2" '$2 == f || $2 == "*"f {found = 1} END {exit !found}' "$1"; }

download() { # URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -qO "$2" "$1"
	else
		fatal "neither curl nor wget is installed"
	fi
}

# arch: the release for this machine (uname -m): amd64, arm64, or arm
# (armv7 with hard float, which armv8l reports when a 64-bit CPU runs a
# 32-bit system).
arch() {
	case "$(uname -m)" in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	armv7l | armv7* | armv8l) echo arm ;;
	*) fatal "unsupported architecture $(uname -m): kubling is released for x86_64, aarch64 and armv7 (armv7l, armv8l)" ;;
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
		a=$(arch) || exit 1
		download "$RELEASE_URL/download/$version/sha256sum.txt" "$tmp/sums" || fatal "download of the checksums of $version failed"
		# An agent gets the agent build (no control plane: half the memory)
		# where the release has one; a server, or an older release, kubling.
		name=kubling
		build=""
		if [ "${MODE:-server}" = agent ] && { listed "$tmp/sums" "kubling-agent-$a.xz" || listed "$tmp/sums" "kubling-agent-$a.gz"; }; then
			name=kubling-agent
			build=", agent build"
		fi
		# xz where the release has it and this host can unpack it (about
		# half the size), else gzip (every host, BusyBox's included, has one).
		artifact=""
		missing=""
		for ext in xz gz; do
			listed "$tmp/sums" "$name-$a.$ext" || continue
			tool=gzip
			[ "$ext" = xz ] && tool=xz
			if have "$tool"; then
				artifact=$name-$a.$ext
				break
			fi
			missing="$missing $tool"
		done
		if [ -z "$artifact" ]; then
			[ -z "$missing" ] || fatal "cannot unpack kubling $version: install one of:$missing"
			artifact=$name-$a.gz # an unlisted artifact: its download fails below
		fi
		info "downloading kubling $version ($a$build)"
		download "$RELEASE_URL/download/$version/$artifact" "$tmp/$artifact" || fatal "download of $artifact ($version) failed"
		want=$(awk -v f="$artifact" '$2 == f || $2 == "*"f {print $1}' "$tmp/sums")
		got=$(sha256sum "$tmp/$artifact" | cut -d' ' -f1)
		[ -n "$want" ] && [ "$want" = "$got" ] || fatal "checksum mismatch for $artifact (want ${want:-none}, got $got)"
		case $artifact in
		*.xz) unpack="xz -dc" ;;
		*) unpack="gzip -dc" ;;
		esac
		$unpack "$tmp/$artifact" >"$target.tmp" || {
			rm -f "$target.tmp"
			fatal "cannot decompress $artifact"
		}
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
	{
		killall_header
		"$BIN_DIR/kubling" internal-script killall | sed 1d
	} >"$BIN_DIR/kubling-killall.sh"
	chmod 755 "$BIN_DIR/kubling-killall.sh"
	{
		uninstall_header
		"$BIN_DIR/kubling" internal-script uninstall
	} >"$BIN_DIR/kubling-uninstall.sh"
	chmod 755 "$BIN_DIR/kubling-uninstall.sh"
}

# uninstall_header: the settings kubling-uninstall.sh starts with, each
# quoted for sh.
uninstall_header() {
	echo "#!/bin/sh"
	echo "# Written by kubling's install.sh."
	echo "BIN_DIR=$(quote "$BIN_DIR")"
	echo "SERVICE_NAME=$(quote "$NAME")"
	echo "SERVICE_SYSTEM=$(quote "$SYSTEM")"
	echo "DATA_DIR=$(quote "$DATA_DIR")"
}

# killall_header: the installed kubling-killall.sh knows its installation:
# the data dir it stops by default, and the service to stop first (else the
# init system would start kubling again while killall cleans up).
killall_header() {
	echo "#!/bin/sh"
	echo "# Written by kubling's install.sh: this installation's data dir and service."
	echo "KILLALL_DATA_DIR=$(quote "$DATA_DIR")"
	echo "KILLALL_SERVICE_NAME=$(quote "$NAME")"
	echo "KILLALL_SERVICE_SYSTEM=$(quote "$SYSTEM")"
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

# command_words: the words of the command that starts kubling, one a line
# after a "=" (as exec_words prints them).
command_words() {
	printf '=%s\n' "$BIN_DIR/kubling" "$MODE"
	printf '%s\n' "$EXEC_WORDS"
}

# systemd_words: the words on stdin (as command_words prints them) as one
# command line for systemd (ExecStart=). A word of plain characters stays as
# it is; any other is double-quoted, with \ and " escaped by a backslash, %
# written %% (no specifier) and $ written $$ (no variable), per systemd.syntax(7)
# and systemd.service(5).
systemd_words() {
	_sw_out=
	while IFS= read -r _sw_line; do
		case $_sw_line in =*) ;; *) continue ;; esac
		_sw_w=${_sw_line#=}
		case $_sw_w in
		"" | *[!A-Za-z0-9_./:=,+@-]*)
			_sw_w=\"$(printf '%s\n' "$_sw_w" | sed -e 's/[\\"]/\\&/g' -e 's/%/%%/g' -e 's/\$/$$/g')\"
			;;
		esac
		_sw_out=$_sw_out${_sw_out:+ }$_sw_w
	done
	printf '%s\n' "$_sw_out"
}

# sh_words: the words on stdin (as command_words prints them) as one line
# of sh words, for eval. A word of plain characters stays as it is; any
# other is single-quoted ('\'' for a quote) with each space outside the
# quotes ('\ '), so the line survives OpenRC's unquoted $command_args
# (field splitting, then eval) with every word whole.
sh_words() {
	_shw_out=
	while IFS= read -r _shw_line; do
		case $_shw_line in =*) ;; *) continue ;; esac
		_shw_w=${_shw_line#=}
		case $_shw_w in
		"" | *[!A-Za-z0-9_./:=,+@-]*)
			_shw_w="'$(printf '%s\n' "$_shw_w" | sed -e "s/'/'\\\\''/g" -e "s/ /'\\\\ '/g")'"
			;;
		esac
		_shw_out=$_shw_out${_shw_out:+ }$_shw_w
	done
	printf '%s\n' "$_shw_out"
}

systemd_unit() {
	cat <<UNIT
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
ExecStart=$(command_words | systemd_words)
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
}

write_systemd_unit() {
	systemd_unit >"/etc/systemd/system/$NAME.service"
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

# openrc_service: the service script. openrc-run sources it, then runs
# `eval supervise-daemon … $command -- $command_args`: command_args is
# assigned in single quotes (nothing expanded when sourced) and holds sh
# words (sh_words) for that eval.
openrc_service() {
	cat <<SERVICE
#!/sbin/openrc-run
description="kubling ($MODE)"
supervisor=supervise-daemon
command="$BIN_DIR/kubling"
command_args=$(quote "$(command_words | sed 1d | sh_words)")
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
}

write_openrc_service() {
	openrc_service >"/etc/init.d/$NAME"
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
		echo "    set -a; . $ENV_FILE; set +a; $(command_words | sh_words)"
		;;
	esac
}

print_join_command() {
	[ "$MODE" = server ] || return 0
	token_file="$DATA_DIR/server/agent-token"
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
