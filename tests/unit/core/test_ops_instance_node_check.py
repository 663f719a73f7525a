"""Before an instance's disks are made, each of its nodes (the secondary too: it runs the instance
after a failover) is asked by the real agent whether its hypervisor can run these hvparams (QEMU, the
CPU model, KVM, firmware): a node that cannot stops the create with its own words, nothing touched."""

import pytest

from plugins.module_utils.herd.errors import PrerequisiteError
from plugins.module_utils.herd.hypervisor import fake as fake_hv
from plugins.module_utils.herd.hypervisor import tap as tap_mod
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import instance as instance_op

from .conftest import init_spec


def drbd_spec(**extra):
    spec = {"name": "web1", "state": "running", "disk_template": "drbd", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "kvm", "primary_node": "node1", "secondary_node": "node2"}
    spec.update(extra)
    return spec


def lacking_cpu_model_on(monkeypatch, hostname):
    """The node ``hostname``'s hypervisor lacks every CPU model but qemu64."""
    def check_node(self, hvparams):
        if tap_mod.node_name() == hostname and hvparams.get("cpu_type") != "qemu64":
            return [f"hvparams.cpu_type {hvparams['cpu_type']!r}: QEMU on node {hostname} has no CPU model"]
        return []
    monkeypatch.setattr(fake_hv.Fake, "check_node", check_node)


def test_both_nodes_are_asked_with_the_effective_hvparams(cluster, nodes):
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"],
                                          hvparams={"kvm": {"cpu_type": "Nehalem"}}))
    instance_op.ensure(cluster, drbd_spec())
    for node in nodes[:2]:
        asked = [args for verb, args in node.requests if verb == "hypervisor_check"]
        assert len(asked) == 1, node.name
        assert asked[0]["hypervisor"] == "kvm" and asked[0]["hvparams"]["cpu_type"] == "Nehalem"
    assert "hypervisor_check" not in nodes[2].calls


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_secondary_that_cannot_run_it_stops_the_create_before_any_disk(cluster, nodes, monkeypatch, check_mode):
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"],
                                          hvparams={"kvm": {"cpu_type": "x86-64-v2-AES"}}))
    lacking_cpu_model_on(monkeypatch, nodes[1].hostname)
    cluster.check_mode = check_mode
    with pytest.raises(PrerequisiteError, match=r"cpu_type 'x86-64-v2-AES': QEMU on node node2"):
        instance_op.ensure(cluster, drbd_spec())
    assert "web1" not in cluster.store.load().instances
    assert all(node.disks == {} and node.running == {} for node in nodes)
    assert not [verb for node in nodes for verb in node.calls if verb.startswith(("disk_", "blockdev_"))]


def test_hvparams_every_node_can_run_create_the_instance(cluster, nodes, monkeypatch):
    lacking_cpu_model_on(monkeypatch, nodes[1].hostname)
    cluster_op.present(cluster, init_spec(enabled_hypervisors=["kvm", "fake"], hvparams={"kvm": {"cpu_type": "qemu64"}}))
    instance_op.ensure(cluster, drbd_spec())
    assert "web1" in nodes[0].running
