"""IAllocator protocol: request errors, response shape, the executable script."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from plugins.module_utils.herd.allocator import iallocator

from .htools_live import REPO, REQUESTS, data_file

SCRIPT = os.path.join(REPO, "files", "herd-iallocator")


def example(name: str) -> dict:
    with open(os.path.join(REQUESTS, name), encoding="utf-8") as fh:
        return json.load(fh)


def run(data: dict, *args: str, tmp_path) -> tuple[int, dict | None, str]:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, SCRIPT, *args, str(path)], capture_output=True,
                          text=True, check=False)
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


def test_script_answers_an_allocate_like_hail(tmp_path):
    rc, out, _err = run(example("minimal-alloc-drbd.json"), tmp_path=tmp_path)
    assert rc == 0
    assert out == {"success": True, "info": out["info"], "result": ["node1", "node3"]}
    assert out["info"].startswith("Request successful: Selected group: default")


def test_script_reports_an_impossible_request_with_exit_zero(tmp_path):
    rc, out, _err = run(example("minimal-alloc-drbd-fail.json"), "--explain", tmp_path=tmp_path)
    assert rc == 0 and out["success"] is False and out["result"] == []
    assert out["info"] == ("Request failed: Group default (preferred): No valid allocation "
                           "solutions, failure reasons: FailMem: 6")
    assert sorted(r.split(":")[0] for r in out["reasons"]) == ["node1", "node2", "node3"]
    assert all("FailMem needs 20000 MiB" in r for r in out["reasons"])


def test_script_rejects_bad_types_naming_the_key(tmp_path):
    with open(data_file("hail-invalid-reloc.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    rc, out, err = run(data, tmp_path=tmp_path)
    assert rc == 1 and out is None
    assert "Error: invalid request dict: key 'name': Unable to read String" in err


def test_script_rejects_invalid_json_naming_the_line(tmp_path):
    path = tmp_path / "req.json"
    path.write_text('{"request":\n  {"type": "allocate",,}\n}')
    proc = subprocess.run([sys.executable, SCRIPT, str(path)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert "line 2 column" in proc.stderr


@pytest.mark.parametrize("path,key", [
    (("nodes", "node1", "offline"), "invalid data for node 'node1': key 'offline' is missing"),
    (("nodegroups", "g-uuid-1", "alloc_policy"), "invalid data for group 'g-uuid-1': key "
     "'alloc_policy' is missing"),
    (("request", "memory"), "invalid request dict: key 'memory' is missing"),
    (("instances", "web1", "disk_space_total"), "invalid data for instance 'web1': key "
     "'disk_space_total' is missing"),
    (("cluster_tags",), "invalid iallocator message: key 'cluster_tags' is missing"),
])
def test_missing_keys_are_named(path, key):
    data = copy.deepcopy(example("minimal-alloc-drbd.json"))
    obj = data
    for k in path[:-1]:
        obj = obj[k]
    del obj[path[-1]]
    with pytest.raises(iallocator.RequestError) as exc:
        iallocator.parse_request(data)
    assert key in str(exc.value)


def test_unknown_request_type_is_an_error():
    data = example("minimal-alloc-drbd.json")
    data["request"]["type"] = "teleport"
    with pytest.raises(iallocator.RequestError, match="Invalid request type 'teleport'"):
        iallocator.parse_request(data)


def test_kvm_nodes_get_the_static_node_memory_like_hail():
    req = iallocator.parse_request(example("minimal-alloc-drbd.json"))
    assert {n.n_mem for n in req.cluster.nodes} == {4096}
    req = iallocator.parse_request(example("minimal-alloc-drbd.json"), static_kvm_mem=0)
    assert {n.n_mem for n in req.cluster.nodes} == {1024}


def test_drained_nodes_are_not_candidates():
    data = example("minimal-alloc-plain.json")
    for name in data["nodes"]:
        data["nodes"][name]["drained"] = True
    out = iallocator.run(iallocator.parse_request(data), explain=True)
    assert out["success"] is False
    assert all("drained" in line for line in out["reasons"])


def test_node_evacuate_result_shape_matches_ganeti():
    with open(data_file("hail-node-evac.json"), encoding="utf-8") as fh:
        out = iallocator.run(iallocator.parse_request(json.load(fh)))
    moved, failed, jobs = out["result"]
    assert failed == [] and len(moved) == len(jobs) == 1
    assert [op["OP_ID"] for op in jobs[0]] == ["OP_INSTANCE_REPLACE_DISKS",
                                               "OP_INSTANCE_MIGRATE",
                                               "OP_INSTANCE_REPLACE_DISKS"]


def test_evacuation_without_target_pairs_fails_like_hail():
    out = iallocator.run(iallocator.parse_request(example("minimal-node-evac.json")))
    assert out["result"] == [[], [["web1", "Can't find any good nodes for relocation: no nodes "
                                           "available"]], []]


def test_plain_instance_cannot_be_evacuated_and_says_so():
    data = example("minimal-node-evac.json")
    inst = data["request"]["instances"][0]
    data["instances"][inst]["disk_template"] = "plain"
    data["instances"][inst]["nodes"] = data["instances"][inst]["nodes"][:1]
    out = iallocator.run(iallocator.parse_request(data))
    assert out["result"][1] == [[inst, "Instances of type plain cannot be relocated"]]


def test_script_works_through_a_symlink_in_an_iallocator_directory(tmp_path):
    link = tmp_path / "iallocators" / "herd"
    link.parent.mkdir()
    link.symlink_to(SCRIPT)
    proc = subprocess.run(["/usr/bin/python3", str(link),
                           os.path.join(REQUESTS, "minimal-relocate.json")],
                          capture_output=True, text=True, check=False, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == ["node1"]
