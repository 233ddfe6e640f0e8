#!/bin/sh
# Packs the images the conformance suite runs, under the exact names it
# asks for (test/conformance/images.txt; docs/conformance.md says which spec
# needs which and how each differs from upstream's). Nothing can be pulled
# here, so each is made from what this machine has: the shared Debian root
# (rootfs.sh), the binaries `make conformance-build` makes, and BusyBox
# (busybox.sh).
#
#   test/conformance/images.sh OUT_DIR
#
# Environment: MKIMAGE (the packer), ROOTFS (the Debian root), BIN (the
# folder with agnhost, nnp, sample-apiserver and etcd), K8S_DIR (the
# kubernetes module's source, for the files upstream adds to its images),
# BUSYBOX (upstream BusyBox, static: busybox.sh).
set -eu
out=${1:?usage: images.sh OUT_DIR}
: "${MKIMAGE:?}" "${ROOTFS:?}" "${BIN:?}" "${K8S_DIR:?}" "${BUSYBOX:?}"
e2e=registry.k8s.io/e2e-test-images
images=$K8S_DIR/test/images
mkdir -p "$out"

# agnhost: upstream's binary and files on the shared root; both tags the
# suite names are the same image (the older one is only pinned by specs that
# predate the newer; agnhost keeps its subcommands).
agnhost_files="-file agnhost=$BIN/agnhost -link agnhost-2=agnhost
	-file localhost.crt=$images/agnhost/porter/localhost.crt
	-file localhost.key=$images/agnhost/porter/localhost.key"
# shellcheck disable=SC2086
"$MKIMAGE" -name $e2e/agnhost:2.66.1 -name $e2e/agnhost:2.55 -rootfs "$ROOTFS" $agnhost_files \
	-entrypoint /agnhost -cmd pause -out "$out/agnhost.tar"

# kitten and nautilus: agnhost serving one picture and data.json.
for pet in kitten nautilus; do
	# shellcheck disable=SC2086
	"$MKIMAGE" -name $e2e/$pet:1.8 -rootfs "$ROOTFS" $agnhost_files \
		-file $pet.jpg=$images/$pet/html/$pet.jpg -file data.json=$images/$pet/html/data.json \
		-entrypoint /agnhost -cmd test-webserver -out "$out/$pet.tar"
done

# nginx: Debian's nginx-light on port 80, run as upstream's image runs it.
"$MKIMAGE" -name $e2e/nginx:1.27.0-2 -name $e2e/nginx:1.28.0-2 -rootfs "$ROOTFS" \
	-cmd '["nginx","-g","daemon off;"]' -stop-signal SIGQUIT -out "$out/nginx.tar"

# glibc-dns-testing: dig and getent on glibc; nonroot: the root as user 1234.
"$MKIMAGE" -name $e2e/glibc-dns-testing:2.1.1 -rootfs "$ROOTFS" -out "$out/glibc-dns-testing.tar"
"$MKIMAGE" -name $e2e/nonroot:1.5 -rootfs "$ROOTFS" -user 1234 -out "$out/nonroot.tar"

# nonewprivs: nnp setuid root, so a spec sees whether no_new_privs stops it.
nnp=$(mktemp -d)
mkdir -p "$nnp/usr/local/bin"
cp "$BIN/nnp" "$nnp/usr/local/bin/nnp"
chown 0:0 "$nnp/usr/local/bin/nnp"
chmod 4755 "$nnp/usr/local/bin/nnp"
"$MKIMAGE" -name $e2e/nonewprivs:1.4 -rootfs "$ROOTFS" -rootfs "$nnp" -cmd nnp -out "$out/nonewprivs.tar"

# The aggregator spec's pod: sample-apiserver beside etcd, both static
# binaries built from the versions k8s.io/kubernetes requires, where
# upstream's images keep them.
"$MKIMAGE" -name $e2e/sample-apiserver:1.29.2 -rootfs "$ROOTFS" -file sample-apiserver="$BIN/sample-apiserver" \
	-entrypoint /sample-apiserver -out "$out/sample-apiserver.tar"
"$MKIMAGE" -name registry.k8s.io/etcd:3.7.0-0 -rootfs "$ROOTFS" -file usr/local/bin/etcd="$BIN/etcd" \
	-cmd /usr/local/bin/etcd -out "$out/etcd.tar"

# busybox: upstream's image is BusyBox alone, every applet linked in /bin,
# with the folders and the few /etc files a root needs (specs write to
# /tmp and look users up).
bb=$(mktemp -d)
trap 'rm -rf "$nnp" "$bb"' EXIT
mkdir -p "$bb/bin" "$bb/etc" "$bb/root" "$bb/home" "$bb/var/www" "$bb/usr/bin" "$bb/usr/sbin" "$bb/tmp"
chmod 1777 "$bb/tmp"
chmod 700 "$bb/root"
cp "$BUSYBOX" "$bb/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$bb/bin/$applet"
done
cat >"$bb/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat >"$bb/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
wheel:x:10:root
www-data:x:33:
users:x:100:
nogroup:x:65534:
GROUP
chown -R 0:0 "$bb"
"$MKIMAGE" -name $e2e/busybox:1.37.0-2 -rootfs "$bb" -cmd sh -out "$out/busybox.tar"
