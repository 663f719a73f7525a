"""NIC mode openvswitch on real Open vSwitch (the runbook's --net 0:mode=openvswitch,link=br0,vlan=4000):
the node_network role brings an OVS bridge up, a KVM instance's tap becomes a port of it tagged with
the NIC's VLAN, and removing the instance leaves no port behind.

The instance is diskless and runs QEMU under TCG without a guest (SeaBIOS finds nothing to boot):
the tap and its port exist as long as QEMU runs, which is all this test looks at."""

from __future__ import annotations

import json
import time

import pytest
from vmnodes import REPO, VMCluster, ansible_run

# Not in the VM stage of scripts/test.sh: two runs of the node_network role (the idempotence
# check) cost minutes on TCG nodes. `pytest -m vm_extra tests/vm` (docs/testing.md).
pytestmark = pytest.mark.vm_extra

BRIDGE = "brovs"
VLAN = 4000


def ovs(vm: VMCluster, node: str, *args: str, check: bool = True) -> str:
    return vm.sh(node, "ovs-vsctl " + " ".join(args), check=check).stdout.strip()


def module_ok(vm: VMCluster, name: str, args: dict) -> dict:
    result = vm.module(name, args)
    assert not result.get("failed"), result.get("msg") or result
    return result


def test_openvswitch_nic_is_a_tagged_port_of_the_bridge_and_goes_with_the_instance(vm, site, tmp_path):
    t0 = time.monotonic()
    play = [{"name": "Open vSwitch bridge", "hosts": "herd_nodes", "gather_facts": False,
             "roles": [{"role": "herd.cluster.node_network", "vars": {"node_network_ovs_bridges": [{"name": BRIDGE}]}}]}]
    path = REPO / ".build" / f"ovs-play-{vm.name}.yml"
    path.write_text(json.dumps(play))
    try:
        run = ansible_run.playbook(vm.inventory, path, timeout=900)
        assert run.rc == 0, f"{run!r}\n{run.proc.stdout[-4000:]}"
        again = ansible_run.playbook(vm.inventory, path, timeout=900)
        assert again.rc == 0 and all(again.changed(n) == 0 for n in vm.node_names), again.stats
    finally:
        path.unlink()
    print(f"\novs: role and its idempotent rerun {time.monotonic() - t0:.0f} s", flush=True)
    for node in vm.node_names:
        assert BRIDGE in ovs(vm, node, "list-br").split(), node

    # kvm and diskless next to what the other VM tests use; put back as it was at the end
    name = f"{vm.name}.example.org"
    before = module_ok(vm, "cluster_info", {})
    hypervisors = before["cluster"]["enabled_hypervisors"]
    templates = before["cluster"]["enabled_disk_templates"]
    module_ok(vm, "cluster", {"name": name, "enabled_hypervisors": sorted(set(hypervisors) | {"kvm"}),
                              "enabled_disk_templates": sorted(set(templates) | {"diskless"})})
    try:
        # a node without the bridge: refused before anything is touched, naming node and bridge
        bad = vm.module("instance", {"name": "ovs-bad", "state": "running", "hypervisor": "kvm",
                                     "disk_template": "diskless", "memory": "64M", "vcpus": 1,
                                     "primary_node": "node1",
                                     "nics": [{"mode": "openvswitch", "link": "brnone", "vlan": VLAN}]})
        assert bad.get("failed") and "brnone is not an Open vSwitch bridge on node node1" in bad["msg"], bad
        t1 = time.monotonic()
        created = module_ok(vm, "instance", {
            "name": "ovs1", "state": "running", "hypervisor": "kvm", "disk_template": "diskless",
            "memory": "64M", "vcpus": 1, "primary_node": "node1",
            "hvparams": {"accel": "tcg", "security_model": "none", "vnc_bind_address": "none"},
            "nics": [{"mode": "openvswitch", "link": BRIDGE, "vlan": VLAN}]})
        print(f"ovs: kvm instance created and started {time.monotonic() - t1:.0f} s", flush=True)
        assert created["instance"]["nics"][0]["mode"] == "openvswitch"
        ports = ovs(vm, "node1", "list-ports", BRIDGE).split()
        assert len(ports) == 1 and ports[0].startswith("hv"), ports
        port = ports[0]
        assert ovs(vm, "node1", "get", "Port", port, "tag") == str(VLAN)
        assert ovs(vm, "node1", "port-to-br", port) == BRIDGE
        link = vm.sh("node1", f"ip -j link show dev {port}").stdout
        assert '"master":"ovs-system"' in link.replace(" ", "") and "UP" in link, link
        t2 = time.monotonic()
        module_ok(vm, "instance", {"name": "ovs1", "state": "absent", "shutdown_timeout": 5})
        print(f"ovs: removed {time.monotonic() - t2:.0f} s", flush=True)
        assert ovs(vm, "node1", "list-ports", BRIDGE) == ""
        assert ovs(vm, "node1", "--if-exists", "get", "Port", port, "tag") == ""
        assert vm.sh("node1", f"ip link show dev {port}", check=False).returncode != 0
    finally:
        vm.module("instance", {"name": "ovs1", "state": "absent", "shutdown_timeout": 5})
        module_ok(vm, "cluster", {"name": name, "enabled_hypervisors": hypervisors,
                                  "enabled_disk_templates": templates})
