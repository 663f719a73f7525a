#!/usr/bin/env bash
# The main job: on a fresh Debian 12 machine (as root), install what herd needs,
# bring up a 3-node virtual cluster and run playbooks/site.yml against it, with
# three example instances declared (inventories/vcluster/demo-instances.yml).
# Run it again: the cluster stays, the playbook changes nothing.
# Tear down with: scripts/vcluster down
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/setup.sh | tail -n 1)
export PATH="$venv/bin:$PATH"
scripts/build-collection-link
scripts/vcluster up --nodes "${HERD_NODES:-3}"
/usr/bin/python3 tests/guest/build.py >/dev/null   # the example guests' kernel and initramfs
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
exec ansible-playbook -i inventories/vcluster/hosts.yml playbooks/site.yml \
  -e @inventories/vcluster/demo-instances.yml "$@"
