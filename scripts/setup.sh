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
  python3 python3-venv python3-paramiko python3-netaddr python3-jinja2
  # storage and replication userland (no dm / drbd kernel module here)
  lvm2 drbd-utils e2fsprogs
  # hypervisor
  qemu-system-x86 qemu-utils ovmf genisoimage
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
echo "$venv"
