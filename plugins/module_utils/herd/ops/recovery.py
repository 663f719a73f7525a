"""Repair of interrupted jobs: one registry, into which each operation registers its repair.

A job whose process died (the master was killed, the controller lost) is
found by the next operation on the same instance. That operation closes it
and runs the repair the interrupted job's operation registered for its
opcode: the migration cleanup, the replace-disks rollback, ... Opcodes with
no registered repair left nothing the config does not know about (their undo
steps could not run either), so the current state is taken as it is and the
new run converges from it.

Each operation module registers at import time; ``recover_interrupted``
loads every module that registers a repair first (``load_repairs``), so a
repair runs whichever operation found the job. That loader is the one
place the operations are imported late: a plugin-loading edge, not a
dependency of the logic (the import is written out so that Ansible's module
packaging, which follows import statements, ships those modules with every
module that can find an interrupted job).
"""

from typing import Any, Callable, Dict, List, Optional

from ..config import Config, Instance
from ..jobs import Locks
from .common import Context

# ctx, locks (held on the instance), config, instance, job -> actions taken
Repair = Callable[[Context, Any, Config, Optional[Instance], Dict[str, Any]], List[str]]
REPAIRS: Dict[str, Repair] = {}


def repairs(opcode: str) -> Callable[[Repair], Repair]:
    """Register the decorated function as the repair of an interrupted ``opcode`` job."""
    def register(func: Repair) -> Repair:
        if opcode in REPAIRS and REPAIRS[opcode] is not func:
            raise RuntimeError(f"a repair for {opcode} is registered twice")
        REPAIRS[opcode] = func
        return func
    return register


def load_repairs() -> None:
    """Import every operation that registers a repair (add a new one here)."""
    from . import instance, instance_disks, migrate, replace_disks  # noqa: F401  (they register on import)


def nodes_gone(config: Config, record: Dict[str, Any]) -> List[str]:
    """The nodes of a job's recorded instance that left the cluster or are offline: what was
    created there cannot be removed now (cluster_verify reports it)."""
    nodes = [n for n in (record.get("primary_node"), record.get("secondary_node")) if n]
    return [n for n in nodes if n not in config.nodes or config.nodes[n].offline]


def recover_interrupted(ctx: Context, name: str, locks: Locks, config: Config,
                        interrupted: Optional[List[Dict[str, Any]]] = None) -> List[str]:
    """Close the interrupted jobs on instance ``name`` and run their registered repairs.

    The caller holds the instance lock (``locks``) and passes the config it
    loaded; it reloads the config when actions come back. An operation on many instances
    passes the journal's ``interrupted`` jobs, read once.
    """
    load_repairs()
    actions: List[str] = []
    for job in ctx.journal.interrupted() if interrupted is None else interrupted:
        if job.get("params", {}).get("name") != name or not job.get("opcode", "").startswith("instance_"):
            continue
        ctx.journal.mark_recovered(job["id"], "found by a later operation on the same instance")
        ctx.warnings.append(f"job {job['id']} ({job['opcode']}) on {name} had been interrupted during "
                            f"{job.get('last_message')!r}; it is closed, and this run repairs and converges "
                            "from the current state")
        repair = REPAIRS.get(job["opcode"])
        # an interrupted create never committed its instance: its repair runs without one
        if repair is not None and not ctx.check_mode and (name in config.instances
                                                          or job["opcode"] == "instance_create"):
            actions += repair(ctx, locks, config, config.instances.get(name), job)
    return actions
