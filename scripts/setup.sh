#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) for herd: Debian packages and a
# venv with the pinned Python packages of requirements-dev.txt.
# Idempotent: a second run only checks. Prints the venv path on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${HERD_VENV:-/opt/herd/venv}

apt_packages=(
  # nodes: sshd in namespaces, the agent's python and its tools
  openssh-server openssh-client iproute2 util-linux procps kmod psmisc
  python3 python3-venv python3-paramiko python3-netaddr python3-jinja2 python3-cryptography
  # storage and replication userland (no dm / drbd kernel module here)
  lvm2 drbd-utils e2fsprogs
  # hypervisor
  qemu-system-x86 qemu-utils ovmf genisoimage socat
  # guest image for tests: busybox initramfs
  busybox-static cpio gzip
  # VM nodes (scripts/vmcluster): the Debian base image is debootstrapped
  debootstrap
  # reference: Ganeti's htools (hail, hbal, hspace)
  ganeti-htools-3.0 ganeti-htools
  git rsync
  # ansible-test sanity's shellcheck test (scripts/sanity.sh)
  shellcheck
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d: never start daemons (sshd, lvm) on the host from package scripts
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  rm -f /usr/sbin/policy-rc.d
fi

# Ganeti's htools test data (test/data/htools, test/hs/shelltests) for the
# allocator tests, which compare herd with hail/hbal/hspace on the same input.
# Unpacked, not installed: the package depends on the whole of Ganeti.
gts_cache=${HERD_GANETI_TESTSUITE:-/var/cache/herd/ganeti-testsuite}
if [ ! -d "$gts_cache/usr/share/ganeti/testsuite/test/data/htools" ]; then
  echo "setup: unpacking Debian's ganeti-testsuite into $gts_cache" >&2
  gts_tmp=$(mktemp -d)
  chmod 777 "$gts_tmp"   # apt downloads as the _apt user
  (cd "$gts_tmp" && apt-get download -qq ganeti-testsuite >&2)
  mkdir -p "$gts_cache"
  dpkg-deb -x "$gts_tmp"/ganeti-testsuite_*.deb "$gts_cache"
  rm -rf "$gts_tmp"
fi

stamp="$venv/.herd-requirements.sha256"
want=$(sha256sum "$here/requirements-dev.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building venv $venv" >&2
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r "$here/requirements-dev.txt" >&2
  echo "$want" > "$stamp"
fi

# galaxy-importer (the check Galaxy runs on an uploaded tarball) in its own
# venv: it brings its own ansible-core and ansible-lint versions.
importer_venv=${HERD_IMPORTER_VENV:-/opt/herd/importer-venv}
stamp="$importer_venv/.herd-requirements.sha256"
want=$(sha256sum "$here/requirements-importer.txt" | cut -d' ' -f1)
if [ ! -x "$importer_venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building venv $importer_venv" >&2
  /usr/bin/python3 -m venv "$importer_venv"
  "$importer_venv/bin/pip" install -q --upgrade pip >&2
  "$importer_venv/bin/pip" install -q -r "$here/requirements-importer.txt" >&2
  echo "$want" > "$stamp"
fi
echo "$venv"
