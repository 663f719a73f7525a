"""Issue 11 item 6: values the node checks are checked by the master, by the same
validators, before anything is touched (instance create/modify, cluster init/modify)."""

import pytest

from plugins.module_utils.herd import validate
from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.hypervisor.base import InstanceSpec
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import instance as instance_op
from plugins.module_utils.herd.storage import drbd

from .conftest import init_spec

BAD_HVPARAMS = [
    ({"cpu_type": "qemu64\n"}, "hvparams.cpu_type"),
    ({"cpu_type": "host;reboot"}, "hvparams.cpu_type"),
    ({"kernel_args": "console=ttyS0\n-device evil"}, "kernel_args must be one line"),
    ({"disk_cache": "default\n"}, "hvparams.disk_cache"),
    ({"disk_aio": "native", "disk_cache": "writeback"}, "disk_aio native needs disk_cache none"),
    ({"migration_bandwidth": 0}, "hvparams.migration_bandwidth 0"),
    ({"kvm_extra": "-runas root"}, "kvm_extra: -runas is managed by herd"),
    ({"kvm_extra": "-device e1000,id=net0"}, "id 'net0' is one herd uses"),
    ({"boot_order": "cdrom"}, "boot_order cdrom needs hvparams.cdrom_image_path"),
    ({"disk_type": "ide"}, "hvparams.disk_type 'ide'"),
    ({"vhost_net": "yes"}, "hvparams.vhost_net 'yes'"),
]
BAD_DRBD = [
    ({"protocol": "Z"}, "drbd protocol 'Z' must be A, B or C"),
    ({"resync-rate": -1}, "drbd resync-rate -1"),
    ({"c_max_rate": "fast"}, "drbd c-max-rate 'fast'"),
    ({"cram-hmac-alg": "md4"}, "drbd cram-hmac-alg 'md4'"),
]


def kvm_spec(**extra):
    base = {"name": "web1", "state": "running", "disk_template": "file", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "kvm"}
    base.update(extra)
    return base


def node_spec(hvparams):
    return {"name": "web1", "uuid": "0c8a1b6e-8a8b-4a3c-9d36-6a0b7d0d1e2f", "memory": 256, "hvparams": hvparams}


@pytest.mark.parametrize("hvparams,message", BAD_HVPARAMS)
def test_item6_the_master_refuses_exactly_what_the_node_refuses(hvparams, message):
    with pytest.raises(ValidationError, match=message):
        InstanceSpec.from_dict(node_spec(hvparams))  # the agent, on the node
    with pytest.raises(ValidationError, match=message):
        validate.hvparams(hvparams)                  # the master


@pytest.mark.parametrize("hvparams,message", BAD_HVPARAMS)
def test_item6_bad_hvparams_are_refused_before_any_disk_is_made(cluster, nodes, hvparams, message):
    with pytest.raises(ValidationError, match=message):
        instance_op.ensure(cluster, kvm_spec(hvparams=hvparams))
    assert all(n.calls.count("disk_create") == 0 for n in nodes)
    assert "web1" not in cluster.store.load().instances
    assert not any(job["opcode"].startswith("instance") for job in cluster.journal.list())


def test_item6_a_hvparam_change_the_node_would_refuse_is_refused_on_modify(cluster, nodes):
    instance_op.ensure(cluster, kvm_spec())
    serial = cluster.store.load().serial_no
    with pytest.raises(ValidationError, match="kernel_args must be one line"):
        instance_op.ensure(cluster, kvm_spec(hvparams={"kernel_args": "a\nb"}, restart_on_change=True))
    assert cluster.store.load().serial_no == serial


def test_item6_an_instance_value_that_clashes_with_the_cluster_value_is_refused(cluster):
    cluster_op.present(cluster, init_spec(hvparams={"kvm": {"disk_cache": "writeback"}}))
    with pytest.raises(ValidationError, match="instance web1 hvparams: .*disk_aio native needs"):
        instance_op.ensure(cluster, kvm_spec(hvparams={"disk_aio": "native"}))


@pytest.mark.parametrize("hvparams,message", BAD_HVPARAMS)
def test_item6_cluster_modify_refuses_a_bad_hvparam(cluster, hvparams, message):
    serial = cluster.store.load().serial_no
    with pytest.raises(ValidationError, match=message):
        cluster_op.present(cluster, init_spec(hvparams={"kvm": hvparams}))
    assert cluster.store.load().serial_no == serial


def test_item6_cluster_init_refuses_a_bad_hvparam(ctx):
    with pytest.raises(ValidationError, match="cluster hvparams.kvm: hvparams.cpu_type"):
        cluster_op.present(ctx, init_spec(hvparams={"kvm": {"cpu_type": "qemu64\n"}}))
    assert not ctx.store.exists()


def test_item6_a_cluster_value_that_breaks_an_existing_instance_is_refused(cluster):
    instance_op.ensure(cluster, kvm_spec(hvparams={"disk_aio": "native"}))
    with pytest.raises(ValidationError, match="instance web1 hvparams: .*disk_aio native needs"):
        cluster_op.present(cluster, init_spec(hvparams={"kvm": {"disk_cache": "writeback"}}))
    assert cluster.store.load().cluster.hvparams["kvm"]["disk_cache"] == "none"


@pytest.mark.parametrize("params,message", BAD_DRBD)
def test_item6_the_master_refuses_exactly_the_drbd_parameters_the_node_refuses(params, message):
    with pytest.raises(ValidationError, match=message):
        drbd.check_params(params)  # the agent, on the node
    with pytest.raises(ValidationError, match=message):
        validate.drbd_params(params)


@pytest.mark.parametrize("params,message", BAD_DRBD)
def test_item6_cluster_modify_refuses_bad_drbd_parameters(cluster, params, message):
    serial = cluster.store.load().serial_no
    with pytest.raises(ValidationError, match=message):
        cluster_op.present(cluster, init_spec(diskparams={"drbd": params}))
    assert cluster.store.load().serial_no == serial


def test_item6_a_drbd_create_under_a_bad_stored_protocol_is_refused_before_any_disk(cluster, nodes):
    config = cluster.store.load()
    config.cluster.diskparams["drbd"] = {"protocol": "Z"}  # a config written before the check existed
    cluster.store.save(config)
    with pytest.raises(ValidationError, match="cluster diskparams.drbd: drbd protocol 'Z'"):
        instance_op.ensure(cluster, kvm_spec(disk_template="drbd"))
    assert all(n.calls.count("disk_create") == 0 for n in nodes)
