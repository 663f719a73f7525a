
import json
import shutil
from pathlib import Path

import pytest

from plugins.module_utils.herd.config import Instance
from plugins.module_utils.herd.errors import PrerequisiteError, ValidationError
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import node as node_op
from plugins.module_utils.herd.ops import verify as verify_op

from .conftest import add_spec, init_spec


def test_init_creates_config_with_the_master_as_candidate(ctx):
    result = cluster_op.present(ctx, init_spec())
    assert result["changed"] is True
    config = ctx.store.load()
    assert config.cluster.master_node == "node1"
    assert config.master_candidates() == ["node1"]
    assert config.serial_no == 1


def test_init_twice_changes_nothing(ctx):
    cluster_op.present(ctx, init_spec())
    result = cluster_op.present(ctx, init_spec())
    assert result["changed"] is False
    assert ctx.store.load().serial_no == 1


def test_init_in_check_mode_writes_nothing(ctx):
    ctx.check_mode = True
    result = cluster_op.present(ctx, init_spec())
    assert result["changed"] is True and result["diff"]["before"] is None
    assert not ctx.store.exists()


def test_init_on_a_node_of_another_cluster_is_refused(ctx):
    import os
    from plugins.module_utils.herd.config import write_json_atomic
    write_json_atomic(ctx.store.ssconf_path, {"cluster_name": "other", "master_node": "node9"})
    with pytest.raises(PrerequisiteError, match="already belongs to cluster 'other' \\(master node9\\)"):
        cluster_op.present(ctx, init_spec())
    assert not os.path.exists(ctx.store.path)


def test_init_refuses_an_address_the_master_does_not_have(ctx):
    with pytest.raises(PrerequisiteError, match="secondary_ip 203.0.113.99 is not configured on node1"):
        cluster_op.present(ctx, init_spec(secondary_ip="203.0.113.99"))


def test_modify_merges_hvparams_and_reports_the_diff(ctx):
    cluster_op.present(ctx, init_spec())
    result = cluster_op.present(ctx, init_spec(hvparams={"kvm": {"machine_type": "q35"}}))
    assert result["changed"] is True
    assert result["diff"]["before"]["hvparams"]["kvm"]["machine_type"] == "pc"
    assert result["diff"]["after"]["hvparams"]["kvm"]["machine_type"] == "q35"
    assert ctx.store.load().cluster.hvparams["kvm"]["accel"] == "kvm"  # other keys kept


def test_modify_in_check_mode_writes_nothing(ctx):
    cluster_op.present(ctx, init_spec())
    ctx.check_mode = True
    result = cluster_op.present(ctx, init_spec(mac_prefix="aa:bb:cc"))
    assert result["changed"] is True
    assert ctx.store.load().cluster.mac_prefix == "aa:00:00"


def test_modify_with_another_cluster_name_is_refused(ctx):
    cluster_op.present(ctx, init_spec())
    with pytest.raises(PrerequisiteError, match="master of cluster 'cluster.example', not 'other.example'"):
        cluster_op.present(ctx, init_spec(name="other.example"))


@pytest.mark.parametrize("bad,message", [
    ({"enabled_hypervisors": ["xen"]}, r"enabled_hypervisors: \['xen'\] not supported"),
    ({"volume_group": "-x"}, "invalid volume group"),
    ({"mac_prefix": "zz:00:00"}, "invalid MAC prefix"),
    ({"hvparams": {"kvm": {"bogus": 1}}}, r"hvparams.kvm: unknown parameters \['bogus'\]"),
    ({"master_ip": "300.1.1.1"}, "master_ip '300.1.1.1' is not an IP address"),
    ({"candidate_pool_size": 0}, "candidate_pool_size 0"),
    ({"ipolicy": {"minmax": [{"min": {"memory-size": 512}, "max": {"memory-size": 128}}]}}, "min memory-size 512"),
])
def test_bad_cluster_parameters_are_refused_before_anything_is_written(ctx, bad, message):
    with pytest.raises(ValidationError, match=message):
        cluster_op.present(ctx, init_spec(**bad))
    assert not ctx.store.exists()


def test_node_add_records_host_key_and_pushes_config(cluster, nodes):
    config = cluster.store.load()
    assert sorted(config.nodes) == ["node1", "node2", "node3"]
    assert config.nodes["node2"].ssh_host_keys == {"ssh-ed25519": nodes[1].host_key}
    assert nodes[1].config["serial_no"] == config.serial_no
    assert nodes[2].ssconf["nodes"] == ["node1", "node2", "node3"]


def test_node_add_twice_changes_nothing(cluster):
    serial = cluster.store.load().serial_no
    assert node_op.present(cluster, add_spec(2))["changed"] is False
    assert cluster.store.load().serial_no == serial


def test_node_add_of_unreachable_host_names_host_and_reason(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    nodes[1].reachable = False
    before = Path(ctx.store.path).read_text()
    with pytest.raises(PrerequisiteError, match=r"node add node2: node2: connect failed: cannot reach "
                                                r"198.51.100.12:22: No route to host; the config is unchanged"):
        node_op.present(ctx, add_spec(2))
    assert Path(ctx.store.path).read_text() == before


def test_node_add_without_a_known_host_key_is_refused(ctx):
    cluster_op.present(ctx, init_spec())
    with pytest.raises(PrerequisiteError, match="no SSH host key is known for node4"):
        node_op.present(ctx, add_spec(4))


def test_node_add_of_a_node_in_another_cluster_is_refused(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    nodes[1].ssconf = {"cluster_name": "other", "cluster_uuid": "x", "master_node": "nodeX"}
    with pytest.raises(PrerequisiteError, match="already belongs to cluster 'other'"):
        node_op.present(ctx, add_spec(2))


def test_node_add_refuses_an_address_used_by_another_node(cluster):
    with pytest.raises(PrerequisiteError, match="primary_ip 198.51.100.12 is already used by node node2"):
        node_op.present(cluster, {"name": "node4", "primary_ip": "198.51.100.12"})


def test_node_add_checks_the_node_is_who_it_claims(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    nodes[1].hostname = "impostor"
    with pytest.raises(PrerequisiteError, match="calls itself 'impostor'"):
        node_op.present(ctx, add_spec(2))


def test_node_add_of_a_wrong_agent_version_names_the_role(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    nodes[1].agent_version = "0.0.1"
    with pytest.raises(PrerequisiteError, match="version '0.0.1'.*"):
        node_op.present(ctx, add_spec(2))


def test_node_add_in_check_mode_writes_nothing(ctx):
    cluster_op.present(ctx, init_spec())
    ctx.check_mode = True
    result = node_op.present(ctx, add_spec(2))
    assert result["changed"] is True
    assert "node2" not in ctx.store.load().nodes


def test_draining_a_node_demotes_it_from_candidate(cluster):
    result = node_op.present(cluster, {"name": "node2", "drained": True})
    assert result["diff"]["after"]["master_candidate"] is False
    assert cluster.store.load().nodes["node2"].drained is True


def test_master_cannot_be_drained_or_offlined(cluster):
    for flag in ("drained", "offline"):
        with pytest.raises(PrerequisiteError, match=f"node1 is the master: it cannot be {flag}=True"):
            node_op.present(cluster, {"name": "node1", flag: True})


def test_removing_the_master_is_refused(cluster):
    with pytest.raises(PrerequisiteError, match="node1 is the master"):
        node_op.absent(cluster, {"name": "node1"})


def test_removing_a_node_with_instances_is_refused_and_names_them(cluster):
    config = cluster.store.load()
    config.instances["web1"] = Instance(name="web1", uuid="u", primary_node="node1", secondary_node="node2",
                                        hypervisor="kvm", disk_template="drbd")
    cluster.store.save(config)
    with pytest.raises(PrerequisiteError, match=r"node node2 still holds instances \['web1'\]"):
        node_op.absent(cluster, {"name": "node2"})


def test_removing_a_node_tells_it_to_forget_the_cluster(cluster, nodes):
    node_op.absent(cluster, {"name": "node3"})
    assert "node3" not in cluster.store.load().nodes
    assert nodes[2].ssconf is None and nodes[2].config is None
    assert node_op.absent(cluster, {"name": "node3"})["changed"] is False


def test_destroy_is_refused_while_instances_exist(cluster):
    config = cluster.store.load()
    config.instances["web1"] = Instance(name="web1", uuid="u", primary_node="node1", hypervisor="kvm",
                                        disk_template="diskless")
    cluster.store.save(config)
    with pytest.raises(PrerequisiteError, match=r"still has instances \['web1'\]"):
        cluster_op.absent(cluster, {"name": "cluster.example"})


def test_destroy_makes_every_node_forget(cluster, nodes):
    result = cluster_op.absent(cluster, {"name": "cluster.example"})
    assert result["changed"] is True
    assert not cluster.store.exists() and cluster.store.load_ssconf() is None
    assert nodes[1].ssconf is None


def test_operations_on_a_non_master_name_the_master(ctx):
    from plugins.module_utils.herd.config import write_json_atomic
    write_json_atomic(ctx.store.ssconf_path, {"cluster_name": "c", "master_node": "node2"})
    with pytest.raises(PrerequisiteError, match="node1 is not the master of cluster 'c': run this on the master, node2"):
        node_op.present(ctx, add_spec(3))


def test_verify_is_clean_on_a_fresh_cluster(cluster):
    result = verify_op.verify(cluster)
    assert result["ok"], result["lines"]


def test_verify_reports_a_candidate_with_a_stale_config(cluster, nodes):
    stale = nodes[1].config
    stale["serial_no"] -= 1
    nodes[1].config = stale
    result = verify_op.verify(cluster)
    assert any(f["code"] == "ECLUSTERCFG" and f["object"] == "node2" and "serial" in f["message"]
               for f in result["findings"])


def test_verify_reports_an_unreachable_node_and_a_wrong_agent(cluster, nodes):
    nodes[1].reachable = False
    nodes[2].agent_version = "9.9.9"
    codes = {(f["object"], f["code"]) for f in verify_op.verify(cluster)["findings"]}
    assert ("node2", "ENODESSH") in codes and ("node3", "ENODEVERSION") in codes


def test_verify_reports_instances_on_unknown_nodes(cluster):
    config = cluster.store.load()
    config.instances["web1"] = Instance(name="web1", uuid="u", primary_node="ghost", hypervisor="kvm",
                                        disk_template="diskless")
    cluster.store.save(config)
    result = verify_op.verify(cluster)
    assert "ERROR: ECLUSTERCFG: web1: primary node ghost does not exist" in result["lines"]


def test_init_on_a_candidate_of_a_cluster_names_that_cluster(cluster, nodes):
    from plugins.module_utils.herd.config import write_json_atomic
    write_json_atomic(cluster.store.path, nodes[1].config)  # node1 now holds a candidate's copy...
    config = cluster.store.load()
    config.cluster.master_node = "node2"                   # ...of a cluster whose master is node2
    write_json_atomic(cluster.store.path, config.to_dict())
    with pytest.raises(PrerequisiteError, match="node1 already belongs to cluster 'cluster.example' \\(master node2\\)"):
        cluster_op.present(cluster, init_spec(name="other.example"))


def test_item15_file_storage_dir_cannot_change_while_file_instances_exist(cluster):
    from plugins.module_utils.herd.ops import instance as instance_op

    instance_op.ensure(cluster, {"name": "web1", "state": "stopped", "disk_template": "file", "disks": ["1G"],
                                 "memory": "256M", "hypervisor": "fake"})
    serial = cluster.store.load().serial_no
    with pytest.raises(PrerequisiteError, match=r"cannot change file_storage_dir .* instances keep files there: "
                                                r"\['web1'\]"):
        cluster_op.present(cluster, init_spec(file_storage_dir="/srv/elsewhere"))
    assert cluster.store.load().serial_no == serial
    # the shared directory holds no file disk: it may move
    assert cluster_op.present(cluster, init_spec(shared_file_storage_dir="/srv/shared2"))["changed"] is True


def test_item15_file_storage_dir_may_change_without_file_instances(cluster):
    result = cluster_op.present(cluster, init_spec(file_storage_dir="/srv/elsewhere"))
    assert result["changed"] is True
    assert cluster.store.load().cluster.file_storage_dir == "/srv/elsewhere"


def test_item16_node_add_ignores_known_hosts_lines_outside_herds_managed_block(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    node4 = nodes[3]
    with open(ctx.known_hosts, "a") as handle:  # e.g. an operator's ssh that accepted a key on first use
        handle.write(f"{node4.name},{node4.addresses[0]} ssh-ed25519 {node4.host_key}\n")
    with pytest.raises(PrerequisiteError, match="no SSH host key is known for node4 .* in herd's managed block"):
        node_op.present(ctx, add_spec(4))
    assert "node4" not in ctx.store.load().nodes


def test_item16_node_add_takes_the_key_from_herds_managed_block(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    node_op.present(ctx, add_spec(2))
    assert ctx.store.load().nodes["node2"].ssh_host_keys == {"ssh-ed25519": nodes[1].host_key}


def test_item16_a_line_before_the_block_cannot_override_the_managed_key(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    text = Path(ctx.known_hosts).read_text()
    with open(ctx.known_hosts, "w") as handle:
        handle.write(f"node2,198.51.100.12 ssh-ed25519 {nodes[3].host_key}\n" + text)  # a planted key
    node_op.present(ctx, add_spec(2))
    assert ctx.store.load().nodes["node2"].ssh_host_keys == {"ssh-ed25519": nodes[1].host_key}


# --------------------------------------------------------------------------
# the storage of the enabled disk templates must exist on a node before it joins

def _settings(node, **values):
    data = json.loads(Path(node.settings).read_text())
    data.update(values)
    Path(node.settings).write_text(json.dumps(data))


def test_init_refuses_a_master_without_the_volume_group_of_plain_and_drbd(ctx, nodes):
    nodes[0].volumes.vgs.pop("gnt")
    with pytest.raises(PrerequisiteError, match=r"cluster init: node node1 lacks volume group 'gnt' "
                                                r"\(for drbd, plain\)"):
        cluster_op.present(ctx, init_spec(enabled_disk_templates=["plain", "drbd"]))
    assert not ctx.store.exists()


def test_init_without_lvm_templates_does_not_need_the_volume_group(ctx, nodes):
    nodes[0].volumes.vgs.pop("gnt")
    assert cluster_op.present(ctx, init_spec(enabled_disk_templates=["file", "diskless"]))["changed"]


def test_init_refuses_drbd_without_the_kernel_module(ctx, nodes):
    nodes[0].drbd_module = False
    with pytest.raises(PrerequisiteError, match=r"node node1 lacks the drbd kernel module"):
        cluster_op.present(ctx, init_spec(enabled_disk_templates=["drbd"]))
    assert not ctx.store.exists()
    # plain alone needs no DRBD
    assert cluster_op.present(ctx, init_spec(enabled_disk_templates=["plain"]))["changed"]


def test_a_node_allowed_to_miss_drbd_is_accepted_with_a_warning(ctx, nodes):
    nodes[0].drbd_module = False
    _settings(nodes[0], drbd_module_missing_allowed=True)
    assert cluster_op.present(ctx, init_spec(enabled_disk_templates=["drbd"]))["changed"]
    assert any("node1: drbd is enabled but the drbd kernel module is not loaded" in w for w in ctx.warnings)


def test_init_refuses_sharedfile_without_the_shared_directory(ctx, nodes, tmp_path):
    shutil.rmtree(tmp_path / "shared" / "srv" / "herd-shared" / "file-storage")
    with pytest.raises(PrerequisiteError, match=r"node node1 lacks directory /srv/herd-shared/file-storage "
                                                r"\(for sharedfile"):
        cluster_op.present(ctx, init_spec(enabled_disk_templates=["sharedfile"]))


def test_node_add_refuses_a_node_without_the_storage_and_names_all_it_lacks(ctx, nodes):
    cluster_op.present(ctx, init_spec(enabled_disk_templates=["plain", "drbd"]))
    before = Path(ctx.store.path).read_text()
    nodes[1].volumes.vgs.pop("gnt")
    nodes[1].drbd_module = False
    with pytest.raises(PrerequisiteError, match=r"node add node2: node node2 lacks volume group 'gnt' \(for drbd, "
                                                r"plain\).*; the drbd kernel module") as err:
        node_op.present(ctx, add_spec(2))
    assert "enabled_disk_templates is ['plain', 'drbd']" in str(err.value)
    assert Path(ctx.store.path).read_text() == before
    assert "node2" not in ctx.store.load().nodes
    # a node that hosts no instances needs no disk storage
    assert node_op.present(ctx, add_spec(2, vm_capable=False))["changed"]
