#!/usr/bin/env bash
# The main job: on a fresh Debian 12 machine (as root), install what herd needs,
# bring up a 3-node virtual cluster and run playbooks/site.yml against it.
# Run it again: the cluster stays, the playbook changes nothing.
# Tear down with: scripts/vcluster down
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/setup.sh | tail -n 1)
export PATH="$venv/bin:$PATH"
scripts/build-collection-link
scripts/vcluster up --nodes "${HERD_NODES:-3}"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
exec ansible-playbook -i inventories/vcluster/hosts.yml playbooks/site.yml "$@"
