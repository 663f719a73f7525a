#!/usr/bin/env bash
# Molecule scenarios of the node bootstrap roles (extensions/molecule/*), each
# on a fresh virtual cluster of its own (scripts/vcluster, named mol<pid> by
# default, so it never disturbs the clusters other tests or runs use):
# check mode, converge, idempotence (second run: changed=0), verify.
#
#   tests/molecule/run.sh                 all scenarios
#   tests/molecule/run.sh node_network    some of them
#
# Needs root (namespaces, loop devices) and the venv of scripts/setup.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${HERD_VENV:-/opt/herd/venv}
export PATH="$venv/bin:$PATH"
"$root/scripts/build-collection-link"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 PY_COLORS=0
# a cluster name of this run's own ("mol" + pid): two runs (a developer's and CI) never share nodes
name=${HERD_MOLECULE_VCLUSTER:-mol$$}
export HERD_MOLECULE_INVENTORY="$root/.build/molecule/$name/hosts.yml"
export HERD_MOLECULE_GROUP_VARS="$root/inventories/vcluster/group_vars"
# ansible-compat / molecule caches go under .build, not the home directory
export MOLECULE_EPHEMERAL_DIRECTORY_ROOT="$root/.build/molecule/ephemeral"
mkdir -p "$(dirname "$HERD_MOLECULE_INVENTORY")"

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=(node_base node_network node_storage node_drbd node_hypervisor node)
fi

vcluster() { "$root/scripts/vcluster" "$@"; }
trap 'vcluster down --name "$name" >/dev/null 2>&1 || true' EXIT

logs="$root/.build/molecule/logs"
mkdir -p "$logs"
failed=()
summary=()
for scenario in "${scenarios[@]}"; do
  [ -f "$root/extensions/molecule/$scenario/molecule.yml" ] || { echo "no scenario $scenario" >&2; exit 2; }
  vcluster down --name "$name" >/dev/null 2>&1 || true
  vcluster up --name "$name" --inventory "$HERD_MOLECULE_INVENTORY" >/dev/null
  start=$(date +%s)
  log="$logs/$scenario.log"
  echo "molecule $scenario: running (log $log)"
  # molecule keeps a scenario's state (e.g. "prepared: true") under ~/.ansible/tmp
  # across runs; a stale state would skip prepare on this fresh cluster
  if (cd "$root" && molecule reset -s "$scenario" && molecule test -s "$scenario") >"$log" 2>&1; then
    result=passed
  else
    result=FAILED
    failed+=("$scenario")
    grep -E 'fatal:|FAILED|Executed: Failed|CHANGED|changed: \[' "$log" | tail -40 >&2 || true
  fi
  summary+=("molecule $scenario: $result in $(( $(date +%s) - start )) s")
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: failed: ${failed[*]}" >&2
  exit 1
fi
