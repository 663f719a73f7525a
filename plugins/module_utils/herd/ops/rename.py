"""Rename an instance (gnt-instance rename), declaratively: "the instance called ``name`` is
now called ``new_name``"; a second run finds it renamed and changes nothing.

What is keyed by the name, and renamed here: the config's instance entry, the IP pool
reservations (network ``allocated``), the instance's directory on its nodes (file and
sharedfile disks, whose paths the config records, the cloud-init seed, the sharedfile UEFI
variables). Keyed by UUID and left alone: LV names (``<disk uuid>.diskN``), DRBD resources
(``herd-<disk uuid>.res``), taps, node-local UEFI variables. LVs keep Ganeti's
``originstname+`` tag, the name the instance was created with, as Ganeti does. Runtime files
(the QEMU sockets, pidfile) are keyed by name but exist only while it runs: like Ganeti by
default, the instance must be stopped.
"""

import os
from typing import Any, Callable, Dict, List

from .. import names
from ..config import Config, Instance, now
from ..errors import PrerequisiteError, ValidationError
from ..jobs import Job
from . import nodecalls
from .common import Context, diff_dict
from .instance import instance_status
from .instance_spec import instance_view
from .nodecalls import storage_context
from .phases import LockDecl, Operation, commit

FILE_TEMPLATES = ("file", "sharedfile")


def validate(spec: Dict[str, Any]) -> Dict[str, Any]:
    old = names.check_instance_name(spec.get("name"))
    new = names.check_hostname(spec.get("new_name"), "new_name")
    if old == new:
        raise ValidationError(f"new_name {new!r} is the instance's name already")
    return {"name": old, "new_name": new}


def dir_nodes(config: Config, inst: Instance) -> List[str]:
    """The nodes holding a directory named after the instance."""
    if inst.disk_template == "sharedfile":
        return [inst.primary_node]  # one shared directory
    if inst.disk_template == "file" or inst.os == "cloud_init":
        return inst.nodes() if inst.os == "cloud_init" and inst.disk_template == "drbd" else [inst.primary_node]
    return []


def renamed(inst: Instance, old_dir: str, new_dir: str, new: str) -> Instance:
    """The instance under its new name, with the recorded disk paths moved to the new directory."""
    target = Instance(**vars(inst))
    target.name = new
    target.disks = []
    for disk in inst.disks:
        copied = type(disk)(**vars(disk))
        copied.logical_id = dict(disk.logical_id)
        path = copied.logical_id.get("path")
        if path and os.path.dirname(path) == old_dir:
            copied.logical_id["path"] = os.path.join(new_dir, os.path.basename(path))
        target.disks.append(copied)
    return target


class InstanceRename(Operation):
    """gnt-instance rename, in phases (``phases.Operation``)."""

    opcode = "instance_rename"

    def check_arguments(self) -> None:
        self.spec = validate(self.spec)
        self.old, self.new = self.spec["name"], self.spec["new_name"]

    def declare_locks(self, config: Config) -> LockDecl:
        # both names: nobody creates the new one or changes the old one meanwhile
        return LockDecl(instances=[self.old, self.new])

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        old, new = self.old, self.new
        if old not in config.instances:
            if new in config.instances:
                view = instance_view(config.instances[new])
                return {"changed": False, "instance": view, "diff": diff_dict(view, view),
                        "msg": f"instance {old} is already renamed to {new}"}
            raise PrerequisiteError(f"instance {old} does not exist (nor {new}); nothing to rename")
        if new in config.instances:
            raise PrerequisiteError(f"cannot rename {old} to {new}: an instance {new} exists already")
        inst = config.instances[old]
        if inst.admin_state == "up":
            raise PrerequisiteError(f"instance {old} is marked up: stop it first (state: stopped), as "
                                    "gnt-instance rename requires; its QEMU sockets and files carry its name")
        offline = [n for n in inst.nodes() if config.nodes[n].offline]
        if offline:
            raise PrerequisiteError(f"instance {old} has node(s) {offline} offline: its files there cannot be "
                                    "renamed")
        status = instance_status(self.ctx, config, inst)
        if status["running"]:
            where = status.get("running_on") or [inst.primary_node]
            where = ", ".join(where) if isinstance(where, list) else where
            raise PrerequisiteError(f"instance {old} runs on {where}: stop it first (state: stopped), as "
                                    "gnt-instance rename requires")
        from ..storage.base import StorageContext
        from ..storage.osprov import instance_dir

        storage = StorageContext.from_dict(storage_context(config))
        self.old_dir = instance_dir(storage, old, inst.disk_template) or ""
        self.new_dir = instance_dir(storage, new, inst.disk_template) or ""
        target = renamed(inst, self.old_dir, self.new_dir, new)
        self.inst = inst
        self.nodes = dir_nodes(config, inst)
        networks = sorted(n.name for n in config.networks.values() if old in n.allocated.values())
        before, after = instance_view(inst), instance_view(target)
        actions = ([f"rename {self.old_dir} to {self.new_dir} on {', '.join(self.nodes)}"] if self.nodes else []) \
            + [f"rename {old} to {new} in the config"] \
            + ([f"move the addresses in network(s) {', '.join(networks)}"] if networks else [])
        verb = "would be" if self.ctx.check_mode else "is"
        return {"changed": True, "instance": after, "diff": diff_dict(before, after),
                "actions": actions, "msg": f"instance {old} {verb} renamed to {new}"}

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        old, new = self.old, self.new
        for node in self.nodes:
            args = {"old": old, "new": new, "storage": storage_context(config), "template": self.inst.disk_template}
            with job.step(f"rename directory on {node}"):
                nodecalls.call(self.ctx, config, node, "instance_dir_rename", args)
                back = dict(args, old=new, new=old)
                job.on_undo(f"rename directory back on {node}", _rename_back(self.ctx, config, node, back))

        def change(fresh: Config) -> None:
            if new in fresh.instances:
                raise PrerequisiteError(f"the config changed during the rename of {old}: retry")
            moved = renamed(fresh.instances.pop(old), self.old_dir, self.new_dir, new)
            moved.mtime = now()
            fresh.instances[new] = moved
            for net in fresh.networks.values():
                for ip, owner in list(net.allocated.items()):
                    if owner == old:
                        net.allocated[ip] = new

        with job.step("commit config"):
            commit(self.ctx, self.locks, change, nodes=self.inst.nodes(), instances=[old],
                   what=f"the rename of {old}")
            job.no_more_undo()


def rename(ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    return InstanceRename(ctx, spec).run()


def _rename_back(ctx: Context, config: Config, node: str, args: Dict[str, Any]) -> Callable[[], Any]:
    return lambda: nodecalls.call(ctx, config, node, "instance_dir_rename", args)
