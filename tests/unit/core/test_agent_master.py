"""The agent verbs of master failover, run in process against a scratch state directory."""

import socket

import pytest

from plugins.module_utils.herd.agent.main import handle
from plugins.module_utils.herd.config import Cluster, Config
from plugins.module_utils.herd.version import VERSION


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path))
    return tmp_path


def config(epoch, serial, master="node1"):
    data = Config(cluster=Cluster(name="c", uuid="u", master_node=master, master_epoch=epoch)).to_dict()
    data["serial_no"] = serial
    return data


def call(verb, args):
    return handle({"version": VERSION, "verb": verb, "args": args})


def test_a_config_of_a_later_master_epoch_replaces_one_with_a_higher_serial(state):
    assert call("config_write", {"config": config(0, 40)})["ok"]
    answer = call("config_write", {"config": config(1, 12, master="node2")})
    assert answer["ok"] and answer["result"]["changed"] is True
    member = call("cluster_membership", {})["result"]
    assert (member["config_epoch"], member["config_serial"]) == (1, 12)
    assert member["ssconf"]["master_node"] == "node2"


def test_a_config_of_an_earlier_master_epoch_is_refused(state):
    call("config_write", {"config": config(1, 12, master="node2")})
    answer = call("config_write", {"config": config(0, 40)})
    assert answer["ok"] is False and "(1, 12) with the older (0, 40)" in answer["error"]


def test_config_read_hands_out_the_copy_or_says_there_is_none(state):
    assert "holds no copy" in call("config_read", {})["error"]
    call("config_write", {"config": config(0, 3)})
    assert call("config_read", {})["result"]["config"]["serial_no"] == 3


def test_the_probe_tells_whether_the_old_masters_port_answers(state):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        seen = call("cluster_membership", {"probe": {"address": "127.0.0.1", "port": port}})["result"]
    gone = call("cluster_membership", {"probe": {"address": "127.0.0.1", "port": port}})["result"]
    assert seen["probe_reachable"] is True and gone["probe_reachable"] is False


def test_master_ip_verbs_refuse_bad_values_before_touching_anything():
    answer = call("master_ip_add", {"ip": "10.0.0.300", "netdev": "br0"})
    assert "master_ip '10.0.0.300' is not an IP address" in answer["error"]
    assert "master_netdev" in call("master_ip_add", {"ip": "10.0.0.3", "netdev": "br0; reboot"})["error"]
