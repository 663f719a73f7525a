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


def test_node_facts_reports_memory_cpus_and_kvm(tmp_path, monkeypatch):
    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path))  # the QEMU version cache goes there
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


def _fake_qemu(path, version, log):
    """An executable answering --version like QEMU does, and logging each call to ``log``."""
    path.write_text(f"#!/bin/sh\necho called >> {log}\n"
                    f"echo 'QEMU emulator version {version} (Debian 1:7.2+dfsg-7)'\n"
                    "echo 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers'\n")
    path.chmod(0o755)


def test_qemu_version_is_asked_once_per_binary_and_again_when_it_changes(tmp_path, monkeypatch):
    from plugins.module_utils.herd.agent.facts import QEMU_VERSION_CACHE, qemu_version
    from plugins.module_utils.herd.hypervisor.kvm import qemu_version as kvm_qemu_version

    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("HERD_STATE_DIR", str(state))
    binary, log = tmp_path / "qemu-system-x86_64", tmp_path / "calls"
    _fake_qemu(binary, "7.2.19", log)
    assert qemu_version(str(binary)) == "7.2.19"
    assert qemu_version(str(binary)) == "7.2.19"
    assert kvm_qemu_version(str(binary)) == "7.2.19"  # the hypervisor asks through the same cache
    assert log.read_text().count("called") == 1
    cached = json.loads((state / QEMU_VERSION_CACHE).read_text())
    assert cached[str(binary)]["version"] == "7.2.19"
    # an upgrade renames a new binary into place
    new = tmp_path / "qemu.new"
    _fake_qemu(new, "8.2.2", log)
    os.rename(new, binary)
    assert qemu_version(str(binary)) == "8.2.2"
    assert log.read_text().count("called") == 2
    # the same file rewritten in place, even with its old size and mtime put back
    before = os.stat(binary)
    text = binary.read_text().replace("8.2.2", "8.2.3")
    with open(binary, "r+", encoding="utf-8") as handle:
        handle.write(text)
    os.utime(binary, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(binary).st_size == before.st_size
    assert qemu_version(str(binary)) == "8.2.3"
    assert log.read_text().count("called") == 3


def test_qemu_version_without_a_writable_state_dir_still_answers(tmp_path, monkeypatch):
    from plugins.module_utils.herd.agent.facts import qemu_version

    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path / "missing"))
    binary, log = tmp_path / "qemu-system-x86_64", tmp_path / "calls"
    _fake_qemu(binary, "7.2.19", log)
    assert qemu_version(str(binary)) == "7.2.19"
    assert qemu_version(str(tmp_path / "absent")) is None
    assert not (tmp_path / "missing").exists()  # a node without its state directory gets none from here


def test_qemu_version_cache_keeps_only_binaries_still_there(tmp_path, monkeypatch):
    from plugins.module_utils.herd.agent.facts import QEMU_VERSION_CACHE, qemu_version

    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path))
    log = tmp_path / "calls"
    first, second = tmp_path / "qemu-a", tmp_path / "qemu-b"
    _fake_qemu(first, "7.2.19", log)
    _fake_qemu(second, "8.2.2", log)
    assert qemu_version(str(first)) == "7.2.19"
    first.unlink()
    assert qemu_version(str(second)) == "8.2.2"
    assert sorted(json.loads((tmp_path / QEMU_VERSION_CACHE).read_text())) == [str(second)]


def test_qemu_cpu_models_are_asked_once_per_binary_beside_its_version(tmp_path, monkeypatch):
    from plugins.module_utils.herd.agent.facts import QEMU_VERSION_CACHE, qemu_cpu_models, qemu_version

    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path))
    binary, log = tmp_path / "qemu-system-x86_64", tmp_path / "calls"

    def install(models: str) -> None:
        new = tmp_path / "qemu.new"
        new.write_text(f"#!/bin/sh\necho \"$1\" >> {log}\n"
                       "if [ \"$1\" = --version ]; then echo 'QEMU emulator version 7.2.19'; exit 0; fi\n"
                       "echo 'Available CPUs:'\n"
                       + "".join(f"echo 'x86 {m:<20} a CPU'\n" for m in models.split()))
        new.chmod(0o755)
        os.rename(new, binary)

    install("qemu64 Nehalem")
    assert qemu_cpu_models(str(binary)) == ["Nehalem", "qemu64"]
    assert qemu_version(str(binary)) == "7.2.19"
    assert qemu_cpu_models(str(binary)) == ["Nehalem", "qemu64"]
    assert qemu_version(str(binary)) == "7.2.19"
    assert log.read_text().split() == ["-cpu", "--version"]
    entry = json.loads((tmp_path / QEMU_VERSION_CACHE).read_text())[str(binary)]
    assert entry["cpu_models"] == ["Nehalem", "qemu64"] and entry["version"] == "7.2.19"
    install("qemu64 Nehalem EPYC")  # an upgrade with another model
    assert qemu_cpu_models(str(binary)) == ["EPYC", "Nehalem", "qemu64"]
    assert log.read_text().split() == ["-cpu", "--version", "-cpu"]


def test_node_facts_reads_the_volume_group_and_addresses_with_commands_run_side_by_side(tmp_path, monkeypatch):
    """vgs and ip run while the rest is read; their answers and their failures land as before."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vgs").write_text("#!/bin/sh\nfor vg; do :; done\n"
                                 "[ \"$vg\" = herdvg ] || { echo \"  Volume group $vg not found\" >&2; exit 5; }\n"
                                 "echo '  10236.00 8124.00'\n")
    (bin_dir / "ip").write_text("#!/bin/sh\necho '[{\"addr_info\":[{\"local\":\"198.51.100.11\"}]}]'\n")
    for tool in ("vgs", "ip"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path))
    answer = handle({"version": VERSION, "verb": "node_facts", "args": {"vg": "herdvg"}})
    assert answer["ok"], answer
    assert answer["result"]["volume_group"] == {"name": "herdvg", "present": True, "size": 10236, "free": 8124}
    assert answer["result"]["addresses"] == ["198.51.100.11"]
    answer = handle({"version": VERSION, "verb": "node_facts", "args": {"vg": "othervg"}})
    assert answer["result"]["volume_group"] == {"name": "othervg", "present": False,
                                                "error": "Volume group othervg not found"}
