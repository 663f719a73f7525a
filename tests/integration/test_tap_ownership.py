"""Issue 11 item 13 with real taps in a network namespace of the test's own: tap names
come from the instance UUID, and a tap that belongs to another instance is neither taken
over nor deleted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare (a private network namespace)")

A_UUID = "0b7a1f0e-5d2c-4e8b-9a61-3f2d7c4b8e10"
B_UUID = "7c4e2a91-0f3b-4d6a-8e25-1b9c3d5f7a02"

# Runs inside `unshare --net --mount` (sysfs mounted again, so /sys/class/net is this
# namespace's): a bridge, the taps, and what each step saw, as JSON.
SCRIPT = """
import json, subprocess, sys
subprocess.run(["mount", "-t", "sysfs", "sysfs", "/sys"], check=True)
sys.path.insert(0, sys.argv[1])
from plugins.module_utils.herd.hypervisor import tap
from plugins.module_utils.herd.hypervisor.base import HypervisorError
A, B = sys.argv[2], sys.argv[3]
subprocess.run(["ip", "link", "add", "br0", "type", "bridge"], check=True)
subprocess.run(["ip", "link", "set", "br0", "up"], check=True)
out = {}
name = tap.tap_name(A, 0)
tap.create(name, "br0", None, "NIC 0 of a1", A, "a1")
out["alias"] = tap.owner_of(name)
out["a1_taps"] = tap.instance_taps("a1")
try:  # another instance whose tap name collides with a1's
    tap.create(name, "br0", None, "NIC 0 of b1", B, "b1")
    out["takeover"] = "taken over"
except HypervisorError as exc:
    out["takeover"] = str(exc)
out["b1_removed"] = tap.remove(name, "b1")
out["b1_taps"] = tap.instance_taps("b1")
out["still_there"] = tap.exists(name) and tap.owner_of(name) == out["alias"]
tap.create(name, "br0", None, "NIC 0 of a1", A, "a1")  # a1's own stale tap is recreated
out["a1_removed"] = tap.remove(name, "a1")
out["gone"] = not tap.exists(name)
print(json.dumps(out))
"""


def test_item13_a_tap_of_another_instance_is_neither_taken_over_nor_deleted() -> None:
    proc = subprocess.run(["unshare", "--net", "--mount", sys.executable, "-c", SCRIPT, str(REPO), A_UUID, B_UUID],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    name = "hv" + A_UUID.replace("-", "")[:11] + "0"
    assert seen["alias"] == f"herd {A_UUID} a1"
    assert seen["a1_taps"] == [name]
    assert f"tap {name} already exists" in seen["takeover"] and f"belongs to herd {A_UUID} a1" in seen["takeover"]
    assert (seen["b1_removed"], seen["b1_taps"], seen["still_there"]) == (False, [], True)
    assert (seen["a1_removed"], seen["gone"]) == (True, True)
