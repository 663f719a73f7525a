"""reboot_groups: the rolling-reboot plan (hroller) for the cluster on this master."""

from typing import Any, Dict, List, Optional

from ..allocator.roller import RollerError, RollerOptions, reboot_groups
from ..errors import PrerequisiteError, ValidationError
from .common import Context
from .facts import live_facts


def plan_reboot_groups(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Reboot groups from the master's config and, with ``use_memory``, the nodes' free memory."""
    config = ctx.load_master_config()
    max_size: Optional[int] = spec.get("max_group_size")
    if max_size is not None and max_size < 1:
        raise ValidationError(f"max_group_size {max_size} must be at least 1")
    node_memory: Optional[Dict[str, int]] = None
    unreachable: List[str] = []
    if spec.get("use_memory", True):
        node_memory = {}
        for name, facts in live_facts(ctx, config).items():
            if facts.get("error"):
                if not config.nodes[name].offline:
                    unreachable.append(name)
                    ctx.warnings.append(f"{name} did not answer ({facts['error']}): its free memory is unknown, "
                                        "only the structural rules apply to it")
                continue
            if facts.get("memory_free") is not None:
                node_memory[name] = int(facts["memory_free"])
    options = RollerOptions(node_group=spec.get("node_group"), node_tags=list(spec.get("node_tags") or []),
                            skip_non_redundant=bool(spec.get("skip_non_redundant")),
                            offline_maintenance=bool(spec.get("offline_maintenance")),
                            max_group_size=max_size)
    try:
        plan = reboot_groups(config.to_dict(), node_memory, options)
    except RollerError as exc:
        raise PrerequisiteError(str(exc)) from exc
    result = plan.to_dict()
    result.update(changed=False, unreachable=unreachable,
                  memory_checked=node_memory is not None,
                  msg=f"{len(plan.groups)} reboot group(s) for {sum(len(g) for g in plan.groups)} node(s)"
                      + (f"; {len(plan.downtime)} instance(s) will be down while their node reboots"
                         if plan.downtime else ""))
    return result
