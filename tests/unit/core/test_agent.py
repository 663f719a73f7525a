import json
import os
import subprocess
import sys

from plugins.module_utils.herd.agent.main import handle
from plugins.module_utils.herd.errors import RpcError
from plugins.module_utils.herd.rpc import decode_answer
from plugins.module_utils.herd.version import VERSION

import pytest


def test_agent_refuses_another_version():
    answer = handle({"version": "0.0.1", "verb": "node_facts", "args": {}})
    assert answer["ok"] is False and answer["kind"] == "version_mismatch"


def test_agent_names_known_verbs_for_an_unknown_one():
    answer = handle({"version": VERSION, "verb": "format_disk", "args": {}})
    assert answer["kind"] == "unknown_verb" and "node_facts" in answer["error"]


def test_node_facts_reports_memory_cpus_and_kvm():
    answer = handle({"version": VERSION, "verb": "node_facts", "args": {"file_dirs": ["/tmp"]}})
    assert answer["ok"], answer
    facts = answer["result"]
    assert facts["memory_total"] > 0 and facts["cpu_count"] >= 1
    assert "usable" in facts["kvm"]
    assert facts["file_storage"][0]["path"] == "/tmp"


def test_node_facts_rejects_a_bad_volume_group_name():
    answer = handle({"version": VERSION, "verb": "node_facts", "args": {"vg": "-rf"}})
    assert answer["ok"] is False and "invalid volume group" in answer["error"]


def test_master_names_the_role_for_an_agent_of_another_version():
    raw = json.dumps({"ok": False, "version": "0.0.9", "kind": "version_mismatch", "error": "x"}).encode()
    with pytest.raises(RpcError, match=r"node2: node_facts failed: the agent there is version '0.0.9'.*node_base"):
        decode_answer("node2", "node_facts", raw, b"", 0)


def test_master_reports_a_missing_agent():
    with pytest.raises(RpcError, match="not installed"):
        decode_answer("node2", "node_facts", b"", b"sh: 1: /usr/local/lib/herd/herd-node: not found", 127)


def test_master_reports_agent_errors_with_node_verb_and_stderr():
    raw = json.dumps({"ok": False, "version": VERSION, "error": "vgs failed", "stderr": "Volume group not found"})
    with pytest.raises(RpcError) as info:
        decode_answer("node3", "node_facts", raw.encode(), b"", 0)
    assert str(info.value) == "node3: node_facts failed: vgs failed (stderr: Volume group not found)"


def test_agent_answers_json_on_stdout_when_run_as_a_program(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    script = tmp_path / "herd-node"
    utils = os.path.join(root, "plugins", "module_utils")
    script.write_text(f"import sys\nsys.path.insert(0, {utils!r})\nfrom herd.agent.main import main\nsys.exit(main())\n")
    proc = subprocess.run([sys.executable, str(script)], input=json.dumps(
        {"version": VERSION, "verb": "cluster_membership", "args": {}}).encode(), capture_output=True,
        env={**os.environ, "HERD_STATE_DIR": str(tmp_path)}, check=False)
    answer = json.loads(proc.stdout)
    assert answer == {"ok": True, "version": VERSION, "result": {"ssconf": None, "config_serial": None, "config_epoch": None}}
