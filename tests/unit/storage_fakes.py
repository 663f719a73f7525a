"""Stand-ins for the storage tests: a runner that records argument lists and
an in-memory LVM volume group that answers lvs/vgs/lvcreate/lvextend/lvremove
the way lvm2 2.03 does (JSON reports, sizes in MiB with two decimals)."""

import json
import math
from typing import Any
from collections.abc import Callable, Sequence

from plugins.module_utils.herd.storage.base import CommandResult, StorageError, command_error


class RecordingRunner:
    """Records every command; ``handlers`` answer by program name; anything else succeeds silently."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.handlers: dict[str, Callable[[list[str]], CommandResult]] = {}
        self.secrets: list[str] = []

    def register_secret(self, secret: str) -> None:
        self.secrets.append(secret)

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 600,
            input_text: str | None = None, env: dict[str, str] | None = None) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        self.envs.append(dict(env or {}))
        handler = self.handlers.get(argv[0].rsplit("/", 1)[-1])
        result = handler(argv) if handler else CommandResult(argv, 0, "", "")
        if check and result.rc != 0:
            raise command_error(result)
        return result

    def programs(self) -> list[str]:
        return [c[0].rsplit("/", 1)[-1] for c in self.calls]

    def without_queries(self) -> list[list[str]]:
        """The commands that change something (not lvs/vgs)."""
        return [c for c in self.calls if c[0] not in ("lvs", "vgs")]


class FakeVolumeGroups:
    """In-memory VGs behind lvs/vgs/lvcreate/lvextend/lvremove."""

    def __init__(self, runner: RecordingRunner, vgs: dict[str, int], extent: int = 4):
        self.vgs = dict(vgs)  # name -> size MiB
        self.extent = extent
        self.lvs: dict[tuple, dict[str, Any]] = {}
        for prog in ("lvs", "vgs", "lvcreate", "lvextend", "lvremove", "lvrename", "lvchange"):
            runner.handlers[prog] = getattr(self, "_" + prog)

    def free(self, vg: str) -> int:
        return self.vgs[vg] - sum(v["size"] for (g, _lv), v in self.lvs.items() if g == vg)

    def _round(self, size: int) -> int:
        return math.ceil(size / self.extent) * self.extent

    @staticmethod
    def _size_arg(argv: list[str]) -> int:
        value = argv[argv.index("-L") + 1]
        assert value.endswith("m"), value
        return int(value[:-1])

    def _missing_vg(self, argv: list[str], vg: str) -> CommandResult:
        return CommandResult(argv, 5, "", f'  Volume group "{vg}" not found\n  Cannot process volume group {vg}\n')

    def _lvs(self, argv: list[str]) -> CommandResult:
        vg = None if argv[-1].startswith("vg_name,") else argv[-1]  # "lvs ... -o FIELDS [VG]"
        if vg is not None and vg not in self.vgs:
            return self._missing_vg(argv, vg)
        rows = [{"vg_name": g, "lv_name": n, "lv_size": f"{v['size']:.2f}", "lv_tags": ",".join(v["tags"]),
                 "lv_attr": v.get("attr", "-wi-a-----")} for (g, n), v in sorted(self.lvs.items()) if vg in (None, g)]
        return CommandResult(argv, 0, json.dumps({"report": [{"lv": rows}]}), "")

    def _vgs(self, argv: list[str]) -> CommandResult:
        vg = argv[-1]
        if vg not in self.vgs:
            return self._missing_vg(argv, vg)
        row = {"vg_name": vg, "vg_size": f"{self.vgs[vg]:.2f}", "vg_free": f"{self.free(vg):.2f}",
               "vg_extent_size": f"{self.extent:.2f}"}
        return CommandResult(argv, 0, json.dumps({"report": [{"vg": [row]}]}), "")

    def _lvcreate(self, argv: list[str]) -> CommandResult:
        vg, name, size = argv[-1], argv[argv.index("-n") + 1], self._round(self._size_arg(argv))
        if (vg, name) in self.lvs:
            return CommandResult(argv, 5, "", f'  Logical Volume "{name}" already exists in volume group "{vg}"\n')
        if size > self.free(vg):
            return CommandResult(argv, 5, "", "  Volume group has insufficient free space\n")
        tags = [argv[i + 1] for i, a in enumerate(argv) if a == "--addtag"]
        self.lvs[(vg, name)] = {"size": size, "tags": tags}
        return CommandResult(argv, 0, f'  Logical volume "{name}" created.\n', "")

    def _lvextend(self, argv: list[str]) -> CommandResult:
        vg, name = argv[-1].split("/")
        size = self._round(self._size_arg(argv))
        self.lvs[(vg, name)]["size"] = size
        return CommandResult(argv, 0, "", "")

    def _lvrename(self, argv: list[str]) -> CommandResult:
        vg, old, new = argv[-3:]  # "lvrename [flags] VG OLD NEW"
        if (vg, new) in self.lvs or (vg, old) not in self.lvs:
            return CommandResult(argv, 5, "", f'  Cannot rename "{old}" to "{new}"\n')
        self.lvs[(vg, new)] = self.lvs.pop((vg, old))
        return CommandResult(argv, 0, "", "")

    def _lvchange(self, argv: list[str]) -> CommandResult:
        """lvchange --addtag/--deltag T... VG/LV (tags); -ay and the like change nothing here."""
        tags = [argv[i + 1] for i, a in enumerate(argv) if a == "--addtag"]
        gone = [argv[i + 1] for i, a in enumerate(argv) if a == "--deltag"]
        if tags or gone:
            vg, name = argv[-1].split("/")
            volume = self.lvs[(vg, name)]
            volume["tags"] = [t for t in volume["tags"] if t not in gone] + [t for t in tags if t not in volume["tags"]]
        return CommandResult(argv, 0, "", "")

    def _lvremove(self, argv: list[str]) -> CommandResult:
        vg, name = argv[-1].split("/")
        if (vg, name) not in self.lvs:
            raise StorageError("lvremove of a missing LV: the code should have checked")
        del self.lvs[(vg, name)]
        return CommandResult(argv, 0, "", "")
