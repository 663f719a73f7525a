#!/usr/bin/env bash
# Build the collection tarball as `ansible-galaxy collection build` would for
# a Galaxy upload, print its size and file count, and run galaxy-importer on
# it (the checks Galaxy runs on import, including its own ansible-lint).
# Needs the venvs of scripts/setup.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${HERD_VENV:-/opt/herd/venv}
importer_venv=${HERD_IMPORTER_VENV:-/opt/herd/importer-venv}
out=$(mktemp -d /tmp/herd-galaxy.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$venv/bin/ansible-galaxy" collection build --output-path "$out" "$root" >/dev/null
tarball=$(echo "$out"/herd-cluster-*.tar.gz)
printf 'tarball %s: %s bytes, %s files\n' "$(basename "$tarball")" "$(stat -c %s "$tarball")" \
  "$(tar -tzf "$tarball" | grep -vc '/$')"
# galaxy-importer finds ansible-doc and ansible-lint on PATH
cd "$out"
PATH="$importer_venv/bin:$PATH" python -m galaxy_importer.main "$tarball" | tee "$out/import.log"
if grep -Eq '^(WARNING|ERROR)' "$out/import.log"; then
  echo "galaxy-importer: warnings or errors above" >&2
  exit 1
fi
