"""The DRBD verb arguments the master now sends reach the real agent's handler and are
validated there before anything is touched (drbd_connect timeout/discard_my_data,
drbd_set_mode connect_timeout), and node.json's drbd_tuning is validated by the agent."""

import json

import pytest

from plugins.module_utils.herd.agent import facts, main
from plugins.module_utils.herd.version import VERSION

DISK = "0b7e3c1e-1111-4222-8333-444455556666"
SECRET = "0123456789abcdef0123456789abcdef"


def call(verb, args):
    return main.handle({"version": VERSION, "verb": verb, "args": args})


@pytest.fixture
def node(tmp_path, monkeypatch):
    settings = tmp_path / "node.json"
    settings.write_text(json.dumps({"lvm_driverloaded": False, "drbd_config_dir": str(tmp_path / "drbd"),
                                    "proc_drbd": str(tmp_path / "proc_drbd")}))
    monkeypatch.setattr(facts, "NODE_SETTINGS", str(settings))
    return tmp_path


def drbd_args(**extra):
    args = {"template": "drbd", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": DISK, "size": 1024, "vg": "gnt"}, "node": "node1", "storage": {"vg": "gnt"},
            "drbd": {"local": "node1", "primary": "node1", "port": 11000, "secret": SECRET,
                     "nodes": {"node1": {"address": "203.0.113.1", "minor": 0},
                               "node2": {"address": "203.0.113.2", "minor": 3}}}}
    args.update(extra)
    return args


@pytest.mark.parametrize("verb,extra,message", [
    ("drbd_connect", {"timeout": -1}, "timeout -1"),
    ("drbd_connect", {"discard_my_data": "yes"}, "discard_my_data 'yes' must be true or false"),
    ("drbd_set_mode", {"connect_timeout": True}, "connect_timeout True"),
])
def test_bad_connect_arguments_are_refused_by_the_agent(node, verb, extra, message):
    answer = call(verb, drbd_args(**extra))
    assert answer["ok"] is False
    assert message in json.dumps(answer)
    assert not (node / "drbd").exists()


def test_drbd_connect_without_the_module_fails_clearly_through_the_handler(node):
    answer = call("drbd_connect", drbd_args(timeout=5))
    assert "DRBD kernel module is not loaded" in json.dumps(answer)


def test_bad_tuning_in_node_json_fails_the_verb_naming_the_key(node):
    settings = json.loads((node / "node.json").read_text())
    settings["drbd_tuning"] = {"max_buffers": "1; handlers { }"}
    (node / "node.json").write_text(json.dumps(settings))
    assert "drbd_tuning max_buffers" in json.dumps(call("drbd_connect", drbd_args()))
