import json
import os
import stat
from pathlib import Path

import pytest

from plugins.module_utils.herd.config import Cluster, Config, ConfigStore, Node
from plugins.module_utils.herd.errors import ConfigError


def make_config():
    cluster = Cluster(name="c.example", uuid="u", master_node="node1")
    return Config(cluster=cluster, nodes={"node1": Node(name="node1", uuid="n1", primary_ip="198.51.100.11",
                                                        secondary_ip="203.0.113.11")})


def test_save_bumps_serial_and_writes_mode_0600(tmp_path):
    store = ConfigStore(str(tmp_path))
    config = make_config()
    store.save(config)
    store.save(config)
    assert store.load().serial_no == 2
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_save_writes_ssconf_with_master_and_nodes(tmp_path):
    store = ConfigStore(str(tmp_path))
    store.save(make_config())
    ssconf = store.load_ssconf()
    assert ssconf["master_node"] == "node1"
    assert ssconf["nodes"] == ["node1"]


def test_save_reports_whether_the_ssconf_changed(tmp_path):
    store = ConfigStore(str(tmp_path))
    config = make_config()
    assert store.save(config) is True
    config.cluster.tags = ["x"]
    assert store.save(config) is False
    config.nodes["node2"] = Node(name="node2", uuid="n2", primary_ip="198.51.100.12", secondary_ip="203.0.113.12")
    assert store.save(config) is True


def test_round_trip_keeps_every_field(tmp_path):
    store = ConfigStore(str(tmp_path))
    config = make_config()
    config.cluster.tags = ["a", "b"]
    store.save(config)
    assert store.load().to_dict() == config.to_dict()


def test_truncated_config_is_a_clear_error_and_left_untouched(tmp_path):
    store = ConfigStore(str(tmp_path))
    store.save(make_config())
    raw = Path(store.path).read_text()
    with open(store.path, "w") as handle:
        handle.write(raw[: len(raw) // 2])
    with pytest.raises(ConfigError, match=r"is corrupt \(line \d+ column \d+"):
        store.load()
    assert Path(store.path).read_text() == raw[: len(raw) // 2]


def test_empty_config_is_a_clear_error(tmp_path):
    store = ConfigStore(str(tmp_path))
    open(store.path, "w").close()
    with pytest.raises(ConfigError, match="is empty"):
        store.load()


def test_missing_key_names_the_object(tmp_path):
    store = ConfigStore(str(tmp_path))
    data = make_config().to_dict()
    del data["nodes"]["node1"]["primary_ip"]
    with open(store.path, "w") as handle:
        json.dump(data, handle)
    with pytest.raises(ConfigError, match=r"nodes\.node1: missing keys \['primary_ip'\]"):
        store.load()


def test_unknown_schema_version_is_refused(tmp_path):
    store = ConfigStore(str(tmp_path))
    data = make_config().to_dict()
    data["version"] = 99
    with open(store.path, "w") as handle:
        json.dump(data, handle)
    with pytest.raises(ConfigError, match="schema version 99"):
        store.load()


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    store = ConfigStore(str(tmp_path))
    config = make_config()
    store.save(config)
    before = Path(store.path).read_text()

    def broken_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError):
        store.save(config)
    assert Path(store.path).read_text() == before
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_port_allocation_skips_used_ports():
    config = make_config()
    from plugins.module_utils.herd.config import Instance
    config.instances["i1"] = Instance(name="i1", uuid="x", primary_node="node1", hypervisor="kvm",
                                      disk_template="diskless", network_port=11000)
    assert config.allocate_port() == 11001
