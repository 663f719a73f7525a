#!/usr/bin/env bash
# A smoke run of the collection under one ansible-core release: tests/smoke/playbook.yml
# run by that release's ansible-playbook (the venv scripts/sanity.sh builds for it), with the
# collection copied from the committed files, as an operator's installed copy would be.
#
# Usage: scripts/smoke.sh VERSION   (an ansible-core release, e.g. 2.17.14)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${1:?usage: scripts/smoke.sh VERSION}
venv=${HERD_SANITY_VENV:-/opt/herd/sanity-venv-$version}
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  echo "smoke: no ansible-core $version in $venv (scripts/sanity.sh $version builds it)" >&2
  exit 2
fi
work=$(mktemp -d /tmp/herd-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/herd/cluster"
mkdir -p "$dest"
(cd "$root" && git ls-files -z | grep -zv "^\.build/" | xargs -0 -I{} cp --parents {} "$dest")
export ANSIBLE_COLLECTIONS_PATH="$work" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
"$venv/bin/ansible-playbook" --version > "$work/version"
head -n 1 "$work/version"
"$venv/bin/ansible-playbook" -i localhost, "$root/tests/smoke/playbook.yml"
