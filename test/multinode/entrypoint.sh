#!/bin/sh
# Entry point of a kubling test node container (Dockerfile.test): runs
# `kubling server …` or `kubling agent …` as a real host would.
set -eu
# Mounts made under the kubelet's folders must propagate, as on a host.
mount --make-rshared /
# Node containers share the host's cgroup tree (--cgroupns host, see
# docs/testing.md). Each node's kubelet gets a cgroup root of its own, so no
# kubelet takes another node's pods for orphans of its own.
root="kubling-$(hostname)"
for d in /sys/fs/cgroup/*/; do
	if [ -e "${d}cgroup.procs" ]; then mkdir -p "${d}${root}"; fi
done
# Agents run the agent build (bin/kubling-agent), as install.sh installs
# them; servers the full kubling.
exe=kubling
if [ "${1:-}" = agent ]; then exe=kubling-agent; fi
exec "$exe" "$@" --kubelet-arg="cgroup-root=/${root}"
