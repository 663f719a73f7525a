"""The node_drbd role's settings really reach DRBD (issue 9 bugs 5 and 10): its tuning is in
every resource file the agent writes (checked with the real drbdadm-84, which prints the
drbdsetup options it would use), and its include file makes herd's resources visible to plain
drbdadm (Debian's /etc/drbd.conf layout, parsed by the real drbdadm-84)."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.storage.base import DiskRequest, NodeSettings, Runner
from plugins.module_utils.herd.storage.drbd import Drbd, DrbdDisk

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "node_drbd"
DRBDADM84 = "/lib/drbd/drbdadm-84"
DISK = "0b7e3c1e-1111-4222-8333-444455556666"
RESOURCE = f"herd-{DISK}"
SECRET = "0123456789abcdef0123456789abcdef"

needs_drbdadm84 = pytest.mark.skipif(not os.path.exists(DRBDADM84), reason="drbd-utils (drbdadm-84) not installed")


def role_tasks() -> Any:
    return yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def role_tuning() -> dict[str, Any]:
    """drbd_tuning as the role records it in node.json, rendered from its defaults."""
    task = next(t for t in role_tasks() if t.get("herd.cluster.node_settings"))
    text = task["herd.cluster.node_settings"]["settings"]
    body = text[text.index("'drbd_tuning': {") + len("'drbd_tuning': "):]
    body = body[:body.index("},") + 1]
    env = jinja2.Environment()
    env.filters["bool"] = bool
    env.filters["int"] = int
    env.filters["string"] = str
    return yaml.safe_load(env.from_string("{{ (" + body + ") | tojson }}").render(**role_defaults()))


def drbd_args() -> dict[str, Any]:
    return {"template": "drbd", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": DISK, "size": 1024, "vg": "gnt"}, "node": "node1", "storage": {"vg": "gnt"},
            "drbd": {"local": "node1", "primary": "node1", "port": 11000, "secret": SECRET,
                     "nodes": {"node1": {"address": "203.0.113.1", "minor": 0},
                               "node2": {"address": "203.0.113.2", "minor": 3}}}}


def adm_dry(conf: str, *command: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, __DRBD_NODE__="node1", LC_ALL="C")
    return subprocess.run([DRBDADM84, "-c", conf, "-d", *command], env=env, capture_output=True, text=True,
                          check=False)


def write_resource(tmp_path: Path, tuning: Any) -> str:
    settings = NodeSettings.from_dict({"drbd_config_dir": str(tmp_path / "herd"), "drbdadm": DRBDADM84,
                                       "drbd_tuning": tuning})
    driver = Drbd(Runner(), settings)
    disk = DrbdDisk.from_request(DiskRequest.from_args(drbd_args()))
    driver.write_config(disk)
    return str(tmp_path / "herd" / f"{RESOURCE}.res")


def test_the_role_records_tuning_the_agent_accepts() -> None:
    tuning = role_tuning()
    assert tuning["max_buffers"] == 16000 and tuning["disk_barrier"] is False
    NodeSettings.from_dict({"drbd_tuning": tuning})  # raises on any key or value the agent refuses


@needs_drbdadm84
def test_the_roles_tuning_reaches_the_drbdsetup_options_of_every_resource(tmp_path: Path) -> None:
    conf = write_resource(tmp_path, role_tuning())
    out = adm_dry(conf, "up", RESOURCE)
    assert out.returncode == 0, out.stderr
    attach = next(line for line in out.stdout.splitlines() if " attach " in line)
    connect = next(line for line in out.stdout.splitlines() if " connect " in line)
    assert "--disk-barrier=no" in attach and "--disk-flushes=yes" in attach and "--md-flushes=yes" in attach
    assert "--max-buffers=16000" in connect and "--max-epoch-size=16000" in connect


def test_bad_tuning_in_node_json_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_buffers"):
        NodeSettings.from_dict({"drbd_tuning": {"max_buffers": "16000; }"}})
    with pytest.raises(ValidationError, match="unknown drbd_tuning key"):
        NodeSettings.from_dict({"drbd_tuning": {"handlers": "x"}})


@needs_drbdadm84
def test_the_roles_include_shows_herds_resources_to_plain_drbdadm(tmp_path: Path) -> None:
    write_resource(tmp_path, {})
    task = next(t for t in role_tasks() if "node_drbd_include_file" in str(t.get("ansible.builtin.copy", {})))
    content = jinja2.Template(task["ansible.builtin.copy"]["content"]).render(
        node_drbd_resource_dir=str(tmp_path / "herd"))
    (tmp_path / "drbd.d").mkdir()
    (tmp_path / "drbd.d" / Path(role_defaults()["node_drbd_include_file"]).name).write_text(content)
    (tmp_path / "drbd.d" / "global_common.conf").write_text("global { usage-count no; }\ncommon { }\n")
    # Debian's /etc/drbd.conf, with the directory made absolute
    (tmp_path / "drbd.conf").write_text(f'include "{tmp_path}/drbd.d/global_common.conf";\n'
                                        f'include "{tmp_path}/drbd.d/*.res";\n')
    out = adm_dry(str(tmp_path / "drbd.conf"), "up", "all")
    assert out.returncode == 0, out.stderr
    assert re.search(rf"drbdsetup-84 new-resource {RESOURCE}\b", out.stdout)


def test_the_include_names_the_agents_resource_directory() -> None:
    assert role_defaults()["node_drbd_resource_dir"] == NodeSettings().drbd_config_dir
