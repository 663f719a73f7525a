"""The autorepair tags (harep's ``ganeti:watcher:autorepair:`` tags, as ``herd:autorepair:``):
the opt-in policy an instance inherits, and the repair state kept in its tags. Plain
functions over the config, so that instance and cluster validation and ``autorepair``
share one set of rules (see ``ops/autorepair.py`` for what each type repairs)."""

import time
from dataclasses import dataclass
from typing import List, Optional

from ..config import Config, Instance
from ..errors import ValidationError

PREFIX = "herd:autorepair:"
TYPES = ("fix-storage", "migrate", "failover", "reinstall")  # least to most destructive
PENDING = PREFIX + "pending:"
RESULT = PREFIX + "result:"
SUSPEND = PREFIX + "suspend"


@dataclass
class Policy:
    enabled: Optional[str] = None      # the highest repair type allowed
    suspended_until: Optional[float] = None  # float("inf"): until the tag is removed
    source: str = ""                   # where the deciding tag is: instance, group NAME, cluster

    def allows(self, needed: str) -> bool:
        return self.enabled is not None and self.suspended_until is None \
            and TYPES.index(needed) <= TYPES.index(self.enabled)

    def text(self) -> str:
        if self.suspended_until is not None:
            until = "until the tag is removed" if self.suspended_until == float("inf") \
                else f"until {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.suspended_until))}"
            return f"suspended by the {self.source} {until}"
        if self.enabled is None:
            return "not enabled (no herd:autorepair:<type> tag on the instance, its node group or the cluster)"
        return f"up to {self.enabled} (tag on the {self.source})"


def tags_policy(tags: List[str], at: float, source: str) -> Optional[Policy]:
    """One object's policy from its tags, or None when they say nothing (Ganeti's getArPolicy)."""
    enabled = [t[len(PREFIX):] for t in tags if t.startswith(PREFIX) and t[len(PREFIX):] in TYPES]
    suspends = [t[len(SUSPEND):] for t in tags if t == SUSPEND or t.startswith(SUSPEND + ":")]
    if "" in suspends:
        return Policy(suspended_until=float("inf"), source=source)
    future = [float(s[1:]) for s in suspends if s[1:].isdigit() and float(s[1:]) > at]
    if future:
        return Policy(suspended_until=max(future), source=source)
    if enabled:
        return Policy(enabled=min(enabled, key=TYPES.index), source=source)
    return None


def policy(config: Config, inst: Instance, at: Optional[float] = None) -> Policy:
    """The instance's policy: its own tags, else its primary node's group's, else the cluster's."""
    at = time.time() if at is None else at
    node = config.nodes.get(inst.primary_node)
    group = config.nodegroups.get(node.group) if node is not None else None
    for tags, source in ((inst.tags, "instance"),
                         (group.tags if group is not None else [], f"node group {node.group if node else '?'}"),
                         (config.cluster.tags, "cluster")):
        found = tags_policy(tags, at, source)
        if found is not None:
            return found
    return Policy()


def check_tags(tags: List[str]) -> None:
    """Refuse a malformed autorepair tag where an operator sets it (clear error, not silence)."""
    for tag in tags:
        if not tag.startswith(PREFIX) or tag.startswith(PENDING) or tag.startswith(RESULT):
            continue
        rest = tag[len(PREFIX):]
        if rest in TYPES or rest == "suspend" or (rest.startswith("suspend:") and rest[8:].isdigit()):
            continue
        raise ValidationError(f"tag {tag!r} is not an autorepair tag herd knows: use {PREFIX}<type> with type one "
                              f"of {list(TYPES)}, {SUSPEND}, or {SUSPEND}:<unix time>")


# --------------------------------------------------------------------------- repair state (tags)

@dataclass
class Record:
    tag: str
    kind: str      # pending | success | failure
    type: str
    job: int
    at: float


def records(inst: Instance) -> List[Record]:
    out = []
    for tag in inst.tags:
        if tag.startswith(PENDING):
            parts, kind = tag[len(PENDING):].split(":"), "pending"
        elif tag.startswith(RESULT):
            parts = tag[len(RESULT):].split(":")
            kind = parts.pop() if len(parts) == 4 else ""
        else:
            continue
        if len(parts) == 3 and parts[0] in TYPES and parts[1].isdigit() and parts[2].isdigit() \
                and kind in ("pending", "success", "failure"):
            out.append(Record(tag, kind, parts[0], int(parts[1]), float(parts[2])))
    return sorted(out, key=lambda r: (r.at, r.job))


def record_tag(kind: str, rtype: str, job: int, at: float) -> str:
    if kind == "pending":
        return f"{PENDING}{rtype}:{job}:{int(at)}"
    return f"{RESULT}{rtype}:{job}:{int(at)}:{kind}"


def is_state(tag: str) -> bool:
    """A tag autorepair writes (pending, result): kept when an operator declares an instance's tags."""
    return tag.startswith(PENDING) or tag.startswith(RESULT)
