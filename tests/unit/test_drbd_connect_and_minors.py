"""DRBD connections that must really hold (issue 9 bug 2), the operator's explicit split-brain
resolution, and minors that belong to another resource (issue 11 item 1).

/proc/drbd is a file the test rewrites the way the kernel would after each drbdadm call."""

from pathlib import Path

import pytest

from plugins.module_utils.herd.storage.base import CommandResult, DiskRequest, NodeSettings, StorageError
from plugins.module_utils.herd.storage.drbd import Drbd, parse_drbdsetup_show

from .storage_fakes import FakeVolumeGroups, RecordingRunner

DISK = "0b7e3c1e-1111-4222-8333-444455556666"
RESOURCE = f"herd-{DISK}"
SECRET = "0123456789abcdef0123456789abcdef"
DRBDADM84 = "/lib/drbd/drbdadm-84"
PROC_HEAD = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 0\n"
SAMPLES = Path(__file__).resolve().parent / "data" / "drbd"


def proc_line(minor: int, cs: str = "Connected", ro: str = "Secondary/Secondary",
              ds: str = "UpToDate/UpToDate") -> str:
    return (f" {minor}: cs:{cs} ro:{ro} ds:{ds} C r-----\n"
            "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n")


class Node:
    def __init__(self, tmp_path: Path, proc: str, local: str = "node1"):
        self.proc = tmp_path / "proc_drbd"
        self.proc.write_text(PROC_HEAD + proc)
        self.runner = RecordingRunner()
        self.vgs = FakeVolumeGroups(self.runner, {"gnt": 4096})
        self.clock = [0.0]
        settings = NodeSettings(lvm_driverloaded=False, drbd_config_dir=str(tmp_path / "conf"),
                                drbdadm=DRBDADM84, proc_drbd=str(self.proc))
        self.drbd = Drbd(self.runner, settings, sleep=self._sleep, clock=lambda: self.clock[0])
        self.local = local

    def _sleep(self, seconds: float) -> None:
        self.clock[0] += seconds

    def after(self, command: str, proc: str) -> None:
        """When drbdadm runs ``command``, the kernel's state becomes ``proc``."""
        def handle(argv: list[str]) -> CommandResult:
            if command in argv:
                self.proc.write_text(PROC_HEAD + proc)
            return CommandResult(argv, 0, "", "")
        self.runner.handlers["drbdadm-84"] = handle

    def req(self) -> DiskRequest:
        return DiskRequest.from_args({
            "template": "drbd", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": DISK, "size": 1024, "vg": "gnt"}, "node": self.local, "storage": {"vg": "gnt"},
            "drbd": {"local": self.local, "primary": "node1", "port": 11000, "secret": SECRET,
                     "nodes": {"node1": {"address": "203.0.113.1", "minor": 0},
                               "node2": {"address": "203.0.113.2", "minor": 3}}}})

    def drbdadm_calls(self) -> list[list[str]]:
        return [c[3:] for c in self.runner.calls if c[0] == DRBDADM84]


# ------------------------------------------------------------------ connect must hold

def test_connect_that_drbd_drops_again_is_a_split_brain_error_not_success(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    node.after("connect", proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    with pytest.raises(StorageError, match="split brain") as err:
        node.drbd.connect(node.req(), timeout=30)
    assert "split_brain_survivor" in str(err.value)
    assert node.drbdadm_calls() == [["connect", RESOURCE]]


def test_connect_waits_until_connected(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    node.after("connect", proc_line(0, cs="SyncSource", ro="Primary/Secondary", ds="UpToDate/Inconsistent"))
    result = node.drbd.connect(node.req(), timeout=30)
    assert result["changed"] and result["status"]["cs"] == "SyncSource"


def test_connect_to_a_silent_peer_times_out_naming_the_state(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    node.after("connect", proc_line(0, cs="WFConnection", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    with pytest.raises(StorageError, match=r"did not connect to node2 within 5 s; it is cs:WFConnection"):
        node.drbd.connect(node.req(), timeout=5)
    assert node.clock[0] >= 5


def test_first_side_connects_without_waiting(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    node.after("connect", proc_line(0, cs="WFConnection", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    assert node.drbd.connect(node.req())["status"]["cs"] == "WFConnection"
    assert node.clock[0] == 0


def test_set_mode_reconnect_on_the_second_side_fails_when_the_connection_does_not_hold(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Secondary/Unknown", ds="UpToDate/DUnknown"))
    node.after("connect", proc_line(0, cs="StandAlone", ro="Secondary/Unknown", ds="UpToDate/DUnknown"))
    for lv, size in ((f"{DISK}.disk0_data", 1024), (f"{DISK}.disk0_meta", 128)):
        node.vgs.lvs[("gnt", lv)] = {"size": size, "tags": ["herd"]}
    with pytest.raises(StorageError, match="StandAlone"):
        node.drbd.set_mode(node.req(), role="primary", dual_primary=False, connect_timeout=30)


# ------------------------------------------------------------------ explicit split-brain resolution

def test_the_chosen_victim_demotes_and_discards_only_on_request(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))

    def kernel(argv: list[str]) -> CommandResult:
        if "secondary" in argv:
            node.proc.write_text(PROC_HEAD + proc_line(0, cs="StandAlone", ro="Secondary/Unknown",
                                                       ds="UpToDate/DUnknown"))
        if "--discard-my-data" in argv:
            node.proc.write_text(PROC_HEAD + proc_line(0, cs="SyncTarget", ro="Secondary/Primary",
                                                       ds="Inconsistent/UpToDate"))
        return CommandResult(argv, 0, "", "")
    node.runner.handlers["drbdadm-84"] = kernel
    result = node.drbd.connect(node.req(), timeout=30, discard_my_data=True)
    assert node.drbdadm_calls() == [["secondary", RESOURCE], ["connect", "--discard-my-data", RESOURCE]]
    assert result["status"]["cs"] == "SyncTarget"


def test_a_plain_connect_never_discards(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, cs="StandAlone", ro="Primary/Unknown", ds="UpToDate/DUnknown"))
    node.drbd.connect(node.req())
    assert all("--discard-my-data" not in c for c in node.runner.calls)


# ------------------------------------------------------------------ minors of other resources

def test_drbdsetup_show_names_the_resource_of_each_minor() -> None:
    owners = parse_drbdsetup_show((SAMPLES / "drbdsetup84_show.txt").read_text())
    assert owners == {0: RESOURCE, 1: "r0"}


def test_create_refuses_a_minor_another_resource_uses_before_touching_anything(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, ro="Primary/Secondary"))
    text = (SAMPLES / "drbdsetup84_show.txt").read_text().replace(RESOURCE, "r-other")
    node.runner.handlers["drbdsetup-84"] = lambda argv: CommandResult(argv, 0, text, "")
    with pytest.raises(StorageError, match="minor 0 .* in use by resource r-other"):
        node.drbd.create(node.req())
    assert node.vgs.lvs == {}
    assert node.drbdadm_calls() == []


def test_create_refuses_a_minor_drbdsetup_cannot_attribute(tmp_path: Path) -> None:
    node = Node(tmp_path, proc_line(0, ro="Primary/Secondary"))
    with pytest.raises(StorageError, match="minor 0 .* in use"):
        node.drbd.create(node.req())
    assert node.vgs.lvs == {}
