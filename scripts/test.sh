#!/usr/bin/env bash
# The test command: on a fresh Debian 12 machine (as root) install what the
# tests need, then run, in order: ruff, mypy, ansible-lint (production profile, the
# whole collection), the changelog fragments' lint, galaxy-importer on the
# built tarball, ansible-test sanity on the oldest ansible-core that
# meta/runtime.yml declares and on the newest release, the molecule scenarios
# of the roles, pytest (unit tests, then the integration tests on a real
# virtual cluster with real sshd and QEMU), and the real-storage tests on
# Debian VM nodes (tests/vm). The exit code is non-zero when either pytest
# run fails.
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

stage "mypy (the engine, mypy.ini)"
mypy

stage "ansible-lint --profile production"
ansible-lint --offline --profile production

stage "changelog fragments"
antsibull-changelog lint

stage "galaxy-importer"
scripts/galaxy-check.sh

# The oldest is requires_ansible's lower bound in meta/runtime.yml (a unit
# test holds them together); the newest is the latest ansible-core release.
for core in 2.17.14 2.19.14; do
  stage "ansible-test sanity, ansible-core $core"
  scripts/sanity.sh "$core"
  stage "smoke run, ansible-core $core"
  scripts/smoke.sh "$core"
done

if [ -x tests/molecule/run.sh ]; then
  stage "molecule"
  tests/molecule/run.sh
fi

stage "pytest: unit and integration"
marker=()
[ "${HERD_SLOW:-0}" = 1 ] || marker=(-m "not slow")
rc=0
python -m pytest -p no:cacheprovider -q --durations=25 "${marker[@]}" tests/unit tests/integration || rc=$?

# Real LVM and DRBD on three Debian VM nodes (scripts/vmcluster); the base
# image is built on first use and cached in /var/cache/herd-vm.
stage "pytest: VM nodes, real storage"
vm_rc=0
python -m pytest -p no:cacheprovider -q --durations=0 -m vm tests/vm || vm_rc=$?

stage "done (pytest rc $rc, VM rc $vm_rc)"
[ "$rc" = 0 ] && [ "$vm_rc" = 0 ]
