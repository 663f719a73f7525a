"""Generate htools text clusters for the allocator benchmark.

Deterministic (seeded).  Shape: mixed node sizes (three classes), mixed drbd
and plain instances, exclusion tags (``htools:iextags:svc``) on a share of the
instances, and an unbalanced start (the first third of the nodes receive most
instances).  Every node keeps positive free memory and disk, so the files load
in hbal/hspace as well as in herd.
"""

from __future__ import annotations

import random

NODE_CLASSES = (
    # t_mem MiB, t_disk MiB, cpus
    (65536, 1 << 20, 16),
    (131072, 2 << 20, 32),
    (262144, 4 << 20, 48),
)
INST_SHAPES = (
    # mem MiB, disk MiB, vcpus
    (1024, 10240, 1),
    (2048, 20480, 1),
    (4096, 40960, 2),
    (8192, 81920, 4),
    (16384, 102400, 8),
)
# std spec 8 GiB / 2 vCPU / 100 GiB; capacity reports allocate "plain" (first template)
POLICY = ("|8192,2,102400,1,1,1|128,1,1024,1,1,1;65536,16,1048576,16,8,12|"
          "plain,drbd,diskless,file,sharedfile,blockdev,rbd,ext|8.0|32.0")


def generate(nodes: int, instances: int, seed: int = 1, drbd_share: float = 0.7,
             tagged_share: float = 0.2, hot_share: float = 0.34,
             hot_weight: float = 6.0, groups: int = 1, offline: int = 0) -> str:
    """Return the text of a cluster with ``nodes`` nodes and up to ``instances``.

    ``groups`` node groups (nodes dealt round-robin; a drbd instance keeps both
    nodes in one group); the last ``offline`` nodes are offline and empty."""
    rnd = random.Random(seed)
    n_rows = []
    for i in range(nodes):
        t_mem, t_dsk, cpus = NODE_CLASSES[i % len(NODE_CLASSES)]
        n_rows.append({"name": f"node{i + 1:03d}", "t_mem": t_mem, "n_mem": 1024,
                       "t_dsk": t_dsk, "cpus": cpus, "used_mem": 0, "used_dsk": 0})
    hot = max(1, int(nodes * hot_share))
    weights = [0.0 if i >= nodes - offline else hot_weight if i < hot else 1.0
               for i in range(nodes)]
    inst_rows = []
    services = [f"svc:s{k}" for k in range(max(2, nodes // 2))]
    for j in range(instances):
        mem, dsk, vcpus = rnd.choice(INST_SHAPES)
        drbd = rnd.random() < drbd_share and nodes > 1
        placed = None
        for _attempt in range(50):
            p = rnd.choices(range(nodes), weights)[0]
            pn = n_rows[p]
            if pn["t_mem"] - pn["n_mem"] - pn["used_mem"] - mem < 4096:
                continue
            dneed = dsk + 128 if drbd else dsk
            if pn["t_dsk"] - pn["used_dsk"] - dneed < 10240:
                continue
            if not drbd:
                placed = (p, None, dneed)
                break
            s = rnd.choices(range(nodes), weights)[0]
            if s == p or s % groups != p % groups:
                continue
            sn = n_rows[s]
            if sn["t_dsk"] - sn["used_dsk"] - dneed < 10240:
                continue
            placed = (p, s, dneed)
            break
        if placed is None:
            continue
        p, s, dneed = placed
        n_rows[p]["used_mem"] += mem
        n_rows[p]["used_dsk"] += dneed
        if s is not None:
            n_rows[s]["used_dsk"] += dneed
        tags = rnd.choice(services) if rnd.random() < tagged_share else ""
        inst_rows.append("|".join([
            f"inst{j + 1:05d}", str(mem), str(dneed), str(vcpus), "running", "Y",
            n_rows[p]["name"], n_rows[s]["name"] if s is not None else "",
            "drbd" if s is not None else "plain", tags, "1"]))
    gnames = ["default"] + [f"group{k}" for k in range(1, groups)]
    lines = [f"{g}|uuid-{g}|preferred||" for g in gnames] + [""]
    for i, n in enumerate(n_rows):
        f_mem = n["t_mem"] - n["n_mem"] - n["used_mem"]
        f_dsk = n["t_dsk"] - n["used_dsk"]
        lines.append("|".join([n["name"], str(n["t_mem"]), str(n["n_mem"]), str(f_mem),
                               str(n["t_dsk"]), str(f_dsk), str(n["cpus"]),
                               "Y" if i >= nodes - offline else "N",
                               f"uuid-{gnames[i % groups]}", "1"]))
    lines.append("")
    lines.extend(inst_rows)
    lines.append("")
    lines.append("htools:iextags:svc")
    lines.append("")
    lines.append(POLICY)
    lines.extend(g + POLICY for g in gnames)
    return "\n".join(lines) + "\n"


def iallocator_message(c: object, request: dict) -> dict:
    """An IAllocator message (hail's JSON input) describing the loaded herd
    cluster ``c`` (``text.load_text``) with ``request``: the same cluster for
    hail and herd's IAllocator."""
    groups = {g.uuid: {"name": g.name, "alloc_policy": g.alloc_policy, "networks": [],
                       "tags": list(g.tags), "ipolicy": g.ipolicy.as_dict()}
              for g in c.groups}  # type: ignore[attr-defined]
    uuid = [g.uuid for g in c.groups]  # type: ignore[attr-defined]
    nodes = {}
    for n in c.nodes:  # type: ignore[attr-defined]
        nodes[n.name] = {
            "total_memory": int(n.t_mem), "reserved_memory": n.n_mem, "free_memory": n.f_mem,
            "total_disk": int(n.t_dsk), "free_disk": n.f_dsk, "total_cpus": int(n.t_cpu),
            "reserved_cpus": n.n_cpu, "group": uuid[n.group], "offline": n.offline,
            "drained": False, "vm_capable": True, "master_candidate": True,
            "master_capable": True, "tags": list(n.tags), "total_spindles": n.t_spindles,
            "free_spindles": n.f_spindles, "primary_ip": "192.0.2.1",
            "secondary_ip": "192.0.2.1", "i_pri_memory": 0, "i_pri_up_memory": 0,
            "ndparams": {"spindle_count": n.t_spindles, "exclusive_storage": n.excl_stor,
                         "oob_program": None}}
    insts = {}
    for i in c.instances:  # type: ignore[attr-defined]
        names = [c.nodes[i.pnode].name] + (  # type: ignore[attr-defined]
            [c.nodes[i.snode].name] if i.snode >= 0 else [])  # type: ignore[attr-defined]
        size = i.dsk - 128 if i.template == "drbd" else i.dsk
        insts[i.name] = {
            "disks": [{"size": size, "mode": "rw", "spindles": 1}], "disk_space_total": i.dsk,
            "memory": i.mem, "vcpus": i.vcpus, "disk_template": i.template, "nodes": names,
            "tags": list(i.tags), "nics": [], "spindle_use": i.spindle_use,
            "admin_state": "up", "admin_state_source": "admin", "hypervisor": "xen-pvm",
            "os": "debian-image"}
    return {"cluster_name": "bench", "cluster_tags": list(c.cluster_tags),  # type: ignore
            "enabled_hypervisors": ["xen-pvm"], "version": 2,
            "ipolicy": c.ipolicy.as_dict(),  # type: ignore[attr-defined]
            "nodegroups": groups, "nodes": nodes, "instances": insts, "request": request}


if __name__ == "__main__":  # pragma: no cover
    import sys
    sys.stdout.write(generate(int(sys.argv[1]), int(sys.argv[2])))
