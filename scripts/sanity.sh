#!/usr/bin/env bash
# ansible-test sanity on the collection. It needs the collection at
# .../ansible_collections/herd/cluster (a copy of the committed files is made
# there) and its test requirements: installed, from ansible-core's own pinned
# sanity requirement files, into a separate venv per ansible-core version
# (ansible-test's --venv mode would download pip from a host we cannot reach).
#
# Usage: scripts/sanity.sh [VERSION] [ansible-test sanity options...]
# VERSION is an ansible-core release (2.17.14); without it, the version pinned
# in requirements-dev.txt. Each version gets its own venv
# /opt/herd/sanity-venv-VERSION; scripts/test.sh runs the oldest version
# meta/runtime.yml declares and the newest release.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ ${1:-} =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  core="ansible-core==$1"
  shift
else
  core=$(grep '^ansible-core==' "$root/requirements-dev.txt")
fi
venv=${HERD_SANITY_VENV:-/opt/herd/sanity-venv-${core#ansible-core==}}
stamp="$venv/.herd-sanity"
if [ ! -x "$venv/bin/ansible-test" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$core" ]; then
  echo "sanity: building $venv" >&2
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q "$core" >&2
  reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')
  for f in "$reqs"/sanity.*.txt; do
    "$venv/bin/pip" install -q -r "$f" >&2
  done
  echo "$core" > "$stamp"
fi
# outside the repository: inside it, ansible-test would see .build as git-ignored
work=$(mktemp -d /tmp/herd-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/herd/cluster"
# ansible-test bootstraps pip in its per-test venvs with a script it downloads
# from a host we cannot reach; give it ours (see the script's docstring).
# The pip version differs between ansible-core releases; install the script
# under every version the installed ansible-test names.
reqs_py=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))')
mkdir -p /root/.ansible/test/cache
grep -oE "pip='[0-9.]+'" "$reqs_py" | grep -oE "[0-9.]+[0-9]" | sort -u | while read -r pip_version; do
  cp "$root/scripts/ansible-test-get-pip.py" "/root/.ansible/test/cache/get_pip_${pip_version//./_}.py"
done
mkdir -p "$dest"
(cd "$root" && git ls-files -z | grep -zv "^\.build/" | xargs -0 -I{} cp --parents {} "$dest")
cd "$dest"
export PATH="$venv/bin:$PATH"
# --python-interpreter: the venv's own interpreter, not whichever python3.X
# comes first on PATH (a pyenv shim, say, whose pip ignores the machine's
# pip configuration)
ansible-test sanity --local --python "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --python-interpreter "$venv/bin/python" --color no "$@"
