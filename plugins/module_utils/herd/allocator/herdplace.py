"""Placement of one new instance in a herd cluster: the bridge between herd's
config plus live node facts and the allocator.

``place`` answers {"success", "primary", "secondary", "reasons", "score"}:
with no node given the allocator chooses (hail's semantics); with nodes given
the same checks run for those nodes only. ``reasons`` has one line per node
that was not chosen, saying why.
"""

from typing import Any, Dict, List, Optional


def place(config: Dict[str, Any], facts: Dict[str, Any], request: Dict[str, Any],
          primary: Optional[str] = None, secondary: Optional[str] = None) -> Dict[str, Any]:
    from . import herdconfig, allocate  # noqa: F401  (the allocator proper)

    model = herdconfig.from_herd_config(config, facts)
    return allocate.place_new(model, request, primary=primary, secondary=secondary)


def unusable_nodes(config: Dict[str, Any], facts: Dict[str, Any]) -> List[str]:
    """Lines for nodes the allocator cannot consider at all (no facts: unreachable)."""
    lines = []
    for name, fact in sorted(facts.items()):
        if fact.get("error"):
            lines.append(f"{name}: unreachable ({fact['error']})")
    return lines
