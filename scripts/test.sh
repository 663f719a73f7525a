#!/usr/bin/env bash
# The test command: on a fresh Debian 12 machine (as root) install what the
# tests need, then run, in order: ruff, ansible-lint, ansible-test sanity,
# the molecule scenarios of the roles, pytest (unit tests, then the
# integration tests on a real virtual cluster with real sshd and QEMU), and
# the real-storage tests on Debian VM nodes (tests/vm). The exit code is
# non-zero when either pytest run fails.
# Long fault tests are marked `slow` and run with HERD_SLOW=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$(scripts/setup.sh | tail -n 1)
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
scripts/build-collection-link
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"

stage() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

stage "ruff"
ruff check --quiet plugins tests bench scripts/vcluster scripts/vmcluster files

stage "ansible-lint"
ansible-lint --offline -q roles playbooks

stage "ansible-test sanity"
scripts/sanity.sh

if [ -x tests/molecule/run.sh ]; then
  stage "molecule"
  tests/molecule/run.sh
fi

stage "pytest: unit and integration"
marker=()
[ "${HERD_SLOW:-0}" = 1 ] || marker=(-m "not slow")
rc=0
python -m pytest -p no:cacheprovider -q "${marker[@]}" tests/unit tests/integration || rc=$?

# Real LVM and DRBD on three Debian VM nodes (scripts/vmcluster); the base
# image is built on first use and cached in /var/cache/herd-vm.
stage "pytest: VM nodes, real storage"
vm_rc=0
python -m pytest -p no:cacheprovider -q --durations=0 -m vm tests/vm || vm_rc=$?

stage "done (pytest rc $rc, VM rc $vm_rc)"
[ "$rc" = 0 ] && [ "$vm_rc" = 0 ]
