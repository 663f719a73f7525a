"""Glue for the ``rebalance`` and ``capacity_info`` modules (kept out of the
module files so they stay thin and the logic is unit-testable)."""

from __future__ import annotations

from typing import Any

from ..errors import HerdError
from .balance import BalanceOptions, balance
from .capacity import Spec, capacity
from .model import Cluster
from .text import load_file


class PlanError(HerdError):
    """A request the planner cannot serve; the message is for the operator."""


def cluster_from_params(params: dict[str, Any], cluster: Cluster | None = None) -> Cluster:
    """The model to plan on: ``cluster`` (herd's own, built on the master by ``ops.facts``) or
    the Ganeti text file ``cluster_file`` names."""
    if cluster is not None:
        return cluster
    path = params.get("cluster_file")
    kw = dict(ignore_dynu=bool(params.get("ignore_dynu", False)),
              offline_nodes=list(params.get("offline_nodes") or []),
              exclusion_tags=list(params.get("exclusion_tags") or []),
              legacy_n1=bool(params.get("legacy_n1", False)))
    if path:
        try:
            return load_file(path, **kw)
        except OSError as exc:
            raise PlanError(f"cannot read cluster_file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise PlanError(f"cluster_file {path}: {exc}") from None
    raise PlanError("no cluster to plan on: run on the master (herd's config) or pass cluster_file "
                    "(a Ganeti htools text file)")


def rebalance_plan(params: dict[str, Any], cluster: Cluster | None = None) -> dict[str, Any]:
    """The plan (never executes anything)."""
    c = cluster_from_params(params, cluster)
    opts = BalanceOptions(
        max_moves=params.get("max_moves", -1) if params.get("max_moves") is not None else -1,
        min_gain=float(params.get("min_gain", 0.01)),
        min_gain_limit=float(params.get("min_gain_limit", 0.1)),
        min_score=float(params.get("min_score", 1e-9)),
        evac_mode=bool(params.get("evac_mode", False)),
        disk_moves=not params.get("no_disk_moves", False),
        instance_moves=not params.get("no_instance_moves", False),
        restricted_migration=bool(params.get("restricted_migration", False)),
        ignore_soft_errors=bool(params.get("ignore_soft_errors", False)),
        select_instances=list(params.get("select_instances") or []),
        exclude_instances=list(params.get("exclude_instances") or []),
        group=params.get("group"),
        time_limit=params.get("time_limit"),
    )
    try:
        results = balance(c, opts)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    groups = [r.as_dict() for r in results]
    return {
        "groups": groups,
        "initial_score": sum(r.initial_score for r in results),
        "final_score": sum(r.final_score for r in results),
        "moves": [m for g in groups for m in g["moves"]],
        "jobsets": [js for g in groups for js in g["jobsets"]],
    }


def capacity_report(params: dict[str, Any], cluster: Cluster | None = None) -> dict[str, Any]:
    c = cluster_from_params(params, cluster)

    def spec(d: dict[str, Any] | None) -> Spec | None:
        if not d:
            return None
        return Spec(int(d["memory"]), int(d["disk"]), int(d["vcpus"]), int(d.get("spindles", 1)))
    rep = capacity(c, template=params.get("disk_template"),
                   std_spec=spec(params.get("std_spec")),
                   tiered_specs=[s for s in [spec(params.get("tiered_spec"))] if s] or None,
                   capacity_checks=not params.get("no_capacity_checks", False),
                   ignore_soft=bool(params.get("ignore_soft_errors", False)),
                   accept_existing=bool(params.get("accept_existing", False)),
                   limit=params.get("max_instances"))
    return rep.as_dict()
