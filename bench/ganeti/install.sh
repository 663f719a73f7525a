#!/usr/bin/env bash
# Install Debian's ganeti (the reference for herd's benchmarks), idempotent.
# Daemons must not start at install time: a temporary policy-rc.d forbids it
# (only when none exists; an existing one is left as it is).
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
  echo "install.sh: run as root" >&2
  exit 1
fi

if dpkg-query -W -f='${Status}\n' ganeti 2>/dev/null | grep -q '^install ok installed$' \
   && [[ -x /usr/lib/ganeti/tools/vcluster-setup ]]; then
  echo "ganeti already installed: $(dpkg-query -W -f='${Version}' ganeti)"
  exit 0
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# temporary, bench/ganeti/install.sh\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
cleanup() {
  if [[ $created_policy -eq 1 ]]; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy ganeti 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends ganeti >&2
echo "ganeti installed: $(dpkg-query -W -f='${Version}' ganeti)"
