"""drbd disks: the resource file (checked by the real drbdadm parser where it is
installed), the command sequences (checked against Ganeti's, reference/ganeti.md
§4a, through ``drbdadm -d`` which prints the drbdsetup/drbdmeta commands it would
run), /proc/drbd parsing with Ganeti's samples, and the executor's steps."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.storage.base import CommandResult, DiskRequest, NodeSettings, StorageError
from plugins.module_utils.herd.config import DRBD_META_SIZE_MIB
from plugins.module_utils.herd.storage.drbd import Commands, Drbd, DrbdDisk, parse_proc_drbd, render_config

from .storage_fakes import FakeVolumeGroups, RecordingRunner

DISK = "0b7e3c1e-1111-4222-8333-444455556666"
SECRET = "0123456789abcdef0123456789abcdef"
RESOURCE = f"herd-{DISK}"
DRBDADM84 = "/lib/drbd/drbdadm-84"
SAMPLES = Path(__file__).resolve().parent / "data" / "drbd"

needs_drbdadm84 = pytest.mark.skipif(not os.path.exists(DRBDADM84), reason="drbd-utils (drbdadm-84) not installed")


def drbd_args(local="node1", primary="node1", size=1024, params=None, **over):
    spec = {"local": local, "primary": primary, "port": 11000, "secret": SECRET,
            "nodes": {"node1": {"address": "203.0.113.1", "minor": 0},
                      "node2": {"address": "203.0.113.2", "minor": 3}}}
    if params is not None:
        spec["params"] = params
    spec.update(over)
    return {"template": "drbd", "instance": "web1.example.org", "index": 0,
            "disk": {"uuid": DISK, "size": size, "vg": "gnt"}, "node": local,
            "storage": {"vg": "gnt"}, "drbd": spec}


def disk(**kw):
    return DrbdDisk.from_request(DiskRequest.from_args(drbd_args(**kw)))


def write(tmp_path, text, name="r.res"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def adm_dry(conf, node, *command):
    """The real drbdadm-84 in dry-run mode, matching ``on <node>`` through __DRBD_NODE__."""
    env = dict(os.environ, __DRBD_NODE__=node, LC_ALL="C")
    return subprocess.run([DRBDADM84, "-c", conf, "-d", *command], env=env, capture_output=True, text=True, check=False)


# ------------------------------------------------------------------ resource file

def test_config_names_both_hosts_with_their_minor_address_and_lvs():
    text = render_config(disk())
    assert f"resource {RESOURCE} {{" in text
    assert "on node1 {" in text and "on node2 {" in text
    assert "device /dev/drbd0 minor 0;" in text and "device /dev/drbd3 minor 3;" in text
    assert "address ipv4 203.0.113.1:11000;" in text and "address ipv4 203.0.113.2:11000;" in text
    assert f"disk /dev/gnt/{DISK}.disk0_data;" in text
    assert f"meta-disk /dev/gnt/{DISK}.disk0_meta;" in text


def test_config_is_identical_on_both_nodes():
    assert render_config(disk(local="node1")) == render_config(disk(local="node2"))


def test_config_uses_ganeti_net_settings():
    text = render_config(disk())
    for line in ("protocol C;", 'cram-hmac-alg "md5";', f'shared-secret "{SECRET}";',
                 "after-sb-0pri discard-zero-changes;", "after-sb-1pri consensus;", "allow-two-primaries no;"):
        assert line in text


def test_config_carries_the_cluster_tuning_params():
    text = render_config(disk(params={"resync-rate": 1024, "protocol": "B"}))
    assert "resync-rate 1024k;" in text and "protocol B;" in text and "c-plan-ahead 0;" in text
    dynamic = render_config(disk(params={"dynamic_resync": True, "c-max-rate": 2048}))
    assert "c-max-rate 2048k;" in dynamic and "c-plan-ahead 20;" in dynamic


def test_meta_lv_may_live_in_another_vg():
    d = disk(params={"metavg": "fastvg"})
    assert d.meta_path == f"/dev/fastvg/{DISK}.disk0_meta"


def test_ipv6_endpoints_are_bracketed():
    d = disk(nodes={"node1": {"address": "fd00::1", "minor": 0}, "node2": {"address": "fd00::2", "minor": 1}})
    assert "address ipv6 [fd00::1]:11000;" in render_config(d)


@needs_drbdadm84
def test_config_parses_with_the_real_drbd84_parser(tmp_path):
    conf = write(tmp_path, render_config(disk()))
    env = dict(os.environ, __DRBD_NODE__="node1")
    result = subprocess.run([DRBDADM84, "-c", conf, "dump", RESOURCE], env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "shared-secret" in result.stdout


@pytest.mark.skipif(shutil.which("drbdadm") is None, reason="drbd-utils not installed")
def test_config_parses_with_the_real_drbd9_drbdadm(tmp_path):
    conf = write(tmp_path, render_config(disk()))
    env = dict(os.environ, __DRBD_NODE__="node2")
    result = subprocess.run(["drbdadm", "-c", conf, "dump", RESOURCE], env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@needs_drbdadm84
def test_a_broken_config_is_what_the_parser_check_catches(tmp_path):
    conf = write(tmp_path, render_config(disk()).replace("protocol C;", "protocol C"))
    result = adm_dry(conf, "node1", "up", RESOURCE)
    assert result.returncode == 10
    assert "Parse error" in result.stderr


@needs_drbdadm84
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root for unshare --uts")
def test_config_matches_on_host_by_uname_inside_the_nodes_uts_namespace(tmp_path):
    conf = write(tmp_path, render_config(disk()))
    script = f"hostname node2 && {DRBDADM84} -c {conf} -d up {RESOURCE}"
    result = subprocess.run(["unshare", "--uts", "sh", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "new-minor " + RESOURCE + " 3 0" in result.stdout


# ------------------------------------------------------------------ commands vs Ganeti §4a

@needs_drbdadm84
def test_up_runs_ganetis_drbdsetup_sequence_on_the_primary(tmp_path):
    d = disk()
    conf = write(tmp_path, render_config(d))
    out = adm_dry(conf, "node1", "up", RESOURCE)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines() if line.strip()]
    assert [line[1] if "drbdsetup" in line[0] else line[-1] for line in lines] == [
        "new-resource", "new-minor", "apply-al", "attach", "connect"]
    assert lines[1][1:] == ["new-minor", RESOURCE, "0", "0"]
    assert lines[2] == ["drbdmeta", "0", "v08", d.meta_path, "flex-external", "apply-al"]
    assert lines[3][1:6] == ["attach", "0", d.data_path, d.meta_path, "flexible"]
    assert "--on-io-error=detach" in lines[3]
    connect = lines[4]
    assert connect[1:5] == ["connect", RESOURCE, "ipv4:203.0.113.1:11000", "ipv4:203.0.113.2:11000"]
    for option in ("--protocol=C", "--after-sb-0pri=discard-zero-changes", "--after-sb-1pri=consensus",
                   "--cram-hmac-alg=md5", f"--shared-secret={SECRET}", "--allow-two-primaries=no"):
        assert option in connect


@needs_drbdadm84
def test_the_secondary_connects_to_the_primary_with_its_own_minor(tmp_path):
    conf = write(tmp_path, render_config(disk(local="node2")))
    out = adm_dry(conf, "node2", "up", RESOURCE).stdout
    assert f"new-minor {RESOURCE} 3 0" in out
    assert "connect " + RESOURCE + " ipv4:203.0.113.2:11000 ipv4:203.0.113.1:11000" in out


@needs_drbdadm84
def test_create_md_is_flex_external_v08_on_the_meta_lv(tmp_path):
    d = disk()
    conf = write(tmp_path, render_config(d))
    cmds = Commands(d, DRBDADM84, conf)
    argv = cmds.create_md()
    out = adm_dry(conf, "node1", *argv[3:])
    assert out.stdout.split() == ["drbdmeta", "0", "v08", d.meta_path, "flex-external", "create-md", "--force"]


@needs_drbdadm84
def test_initial_primary_is_forced_on_the_minor(tmp_path):
    d = disk()
    conf = write(tmp_path, render_config(d))
    out = adm_dry(conf, "node1", *Commands(d, DRBDADM84, conf).primary(force=True)[3:])
    assert out.stdout.split()[1:] == ["primary", "0", "--force"]


@needs_drbdadm84
def test_dual_primary_config_connects_with_allow_two_primaries(tmp_path):
    conf = write(tmp_path, render_config(disk(), dual_primary=True))
    out = adm_dry(conf, "node1", "connect", RESOURCE).stdout
    assert "--allow-two-primaries=yes" in out


@needs_drbdadm84
def test_migration_steps_are_net_options_and_role_changes(tmp_path):
    """What set_mode runs for a live migration (dual: allow two primaries, promote; back to single:
    demote, forbid two primaries), as the real drbdadm-84 prints it."""
    node = Node(tmp_path, proc=proc_line(0)).with_lvs()
    node.drbd.set_mode(node.req(), "primary", dual_primary=True)
    node.proc.write_text(PROC_HEAD + proc_line(0, ro="Primary/Secondary"))
    node.drbd.set_mode(node.req(), "secondary", dual_primary=False)
    conf = str(node.confdir / f"{RESOURCE}.res")
    printed = [adm_dry(conf, "node1", *argv).stdout.split() for argv in node.drbdadm_calls()]
    assert [p[1] for p in printed] == ["net-options", "primary", "secondary", "net-options"]
    assert "--allow-two-primaries=yes" in printed[0] and "--allow-two-primaries=no" in printed[3]
    assert printed[1][1:] == ["primary", "0"] and printed[2][1:] == ["secondary", "0"]


@needs_drbdadm84
def test_a_standalone_create_attaches_the_new_secondary_without_network(tmp_path):
    """replace-disks (Ganeti's _ExecDrbd8Secondary): the new secondary's device comes up with no
    network and is never promoted; it is connected once the config names it. The executor's
    drbdadm calls, as the real drbdadm-84 prints them."""
    node = Node(tmp_path, local="node2", proc="")
    conf = node.drbd.create(node.req(), standalone=True)["config"]
    d = disk(local="node2")
    lines = []
    for argv in node.drbdadm_calls():
        out = adm_dry(conf, "node2", *argv)
        assert out.returncode == 0, out.stderr
        lines += [line.split() for line in out.stdout.splitlines() if line.strip()]
    assert [w[1] if "drbdsetup" in w[0] else w[5] for w in lines] == [
        "create-md", "new-resource", "new-minor", "apply-al", "attach"]
    assert lines[2][1:] == ["new-minor", RESOURCE, "3", "0"]
    assert lines[4][1:6] == ["attach", "3", d.data_path, d.meta_path, "flexible"]


@needs_drbdadm84
def test_replace_disks_disconnects_from_the_old_peer_and_connects_to_the_new_one(tmp_path):
    old = write(tmp_path, render_config(disk()), "old.res")
    out = adm_dry(old, "node1", "disconnect", RESOURCE).stdout.split()
    assert out[1:] == ["disconnect", "ipv4:203.0.113.1:11000", "ipv4:203.0.113.2:11000"]
    moved = disk(nodes={"node1": {"address": "203.0.113.1", "minor": 0},
                        "node3": {"address": "203.0.113.3", "minor": 5}})
    new = write(tmp_path, render_config(moved), "new.res")
    out = adm_dry(new, "node1", "connect", RESOURCE).stdout.split()
    assert out[1:5] == ["connect", RESOURCE, "ipv4:203.0.113.1:11000", "ipv4:203.0.113.3:11000"]
    out = adm_dry(new, "node3", "connect", RESOURCE).stdout.split()
    assert out[1:5] == ["connect", RESOURCE, "ipv4:203.0.113.3:11000", "ipv4:203.0.113.1:11000"]


def test_create_makes_the_data_lv_and_a_meta_lv_of_drbd_meta_size(tmp_path):
    node = Node(tmp_path, proc="")
    node.drbd.create(node.req())
    lvcreate = [c for c in node.runner.calls if c[0] == "lvcreate"]
    assert [c[c.index("-L") + 1] for c in lvcreate] == ["1024m", f"{DRBD_META_SIZE_MIB}m"]


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("over,message", [
    ({"secret": "short"}, "secret must be"),
    ({"secret": "x; rm -rf /" * 3}, "secret must be"),
    ({"port": 70000}, "port"),
    ({"nodes": {"node1": {"address": "203.0.113.1", "minor": 0}}}, "exactly two nodes"),
    ({"nodes": {"node1": {"address": "not-an-ip", "minor": 0}, "node2": {"address": "203.0.113.2", "minor": 1}}},
     "is not an IP address"),
    ({"nodes": {"node1": {"address": "203.0.113.1", "minor": -1}, "node2": {"address": "203.0.113.2", "minor": 1}}},
     "minor"),
    ({"nodes": {"node1": {"address": "203.0.113.1", "minor": 0}, "node2": {"address": "fd00::2", "minor": 1}}},
     "both be IPv4 or both IPv6"),
    ({"primary": "node9"}, "is not one of the disk's nodes"),
    ({"params": {"protocol": "D"}}, "protocol"),
    ({"params": {"bogus": 1}}, "unknown drbd parameter"),
])
def test_bad_drbd_parameters_are_rejected(over, message):
    with pytest.raises(ValidationError, match=message):
        disk(**over)


# ------------------------------------------------------------------ /proc/drbd

def sample(name):
    return (SAMPLES / name).read_text()


def test_proc_drbd84_connected_primary_is_not_degraded():
    parsed = parse_proc_drbd(sample("proc_drbd84.txt"))
    assert parsed["version"] == "8.4.2"
    m0 = parsed["minors"][0]
    assert (m0["cs"], m0["role"], m0["peer_role"], m0["disk"], m0["peer_disk"]) == (
        "Connected", "Primary", "Secondary", "UpToDate", "UpToDate")
    assert m0["primary"] and m0["connected"] and not m0["degraded"]
    assert m0["ns"] == 1048576 and m0["oos"] == 0


def test_proc_drbd84_states_of_the_other_minors():
    minors = parse_proc_drbd(sample("proc_drbd84.txt"))["minors"]
    assert minors[1]["secondary"] and minors[1]["peer_primary"]
    assert minors[2]["unconfigured"]
    assert minors[4]["wfconnection"] and minors[4]["degraded"] and minors[4]["oos"] == 1048320
    assert minors[6]["diskless"] and minors[6]["degraded"]
    assert minors[8]["standalone"] and minors[8]["protocol"] is None
    assert sorted(minors) == [0, 1, 2, 4, 6, 8]


def test_proc_drbd84_sync_progress():
    minors = parse_proc_drbd(sample("proc_drbd84_sync.txt"))["minors"]
    five = minors[5]
    assert five["in_resync"] and five["cs"] == "SyncSource"
    assert five["sync_percent"] == 68.5
    assert five["eta_seconds"] == 5 and five["speed_kib"] == 64800
    assert minors[0]["standalone"] and minors[0]["primary"]
    assert minors[3]["unconfigured"]


def test_proc_drbd83_is_parsed_too():
    parsed = parse_proc_drbd(sample("proc_drbd83.txt"))
    assert parsed["version"] == "8.3.1"
    assert parsed["minors"][5]["peer_disk"] == "Diskless"
    assert parsed["minors"][7]["wfconnection"] and parsed["minors"][7]["secondary"]


# ------------------------------------------------------------------ executor

PROC_HEAD = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 0\n"


def proc_line(minor, cs="Connected", ro="Secondary/Secondary", ds="UpToDate/UpToDate"):
    return (f" {minor}: cs:{cs} ro:{ro} ds:{ds} C r-----\n"
            "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n")


class Node:
    def __init__(self, tmp_path, local="node1", proc=None, driverloaded=False):
        self.proc = tmp_path / f"proc_drbd_{local}"
        if proc is not None:
            self.proc.write_text(PROC_HEAD + proc)
        self.confdir = tmp_path / f"drbd_{local}"
        self.runner = RecordingRunner()
        self.vgs = FakeVolumeGroups(self.runner, {"gnt": 4096})
        settings = NodeSettings(lvm_driverloaded=driverloaded, drbd_config_dir=str(self.confdir),
                                drbdadm=DRBDADM84, proc_drbd=str(self.proc))
        self.clock = [0.0]
        self.drbd = Drbd(self.runner, settings, sleep=self._sleep, clock=lambda: self.clock[0])
        self.local = local

    def with_lvs(self):
        """The node after disk_create: both LVs exist."""
        for lv, size in ((f"{DISK}.disk0_data", 1024), (f"{DISK}.disk0_meta", 128)):
            self.vgs.lvs[("gnt", lv)] = {"size": size, "tags": ["herd"]}
        return self

    def _sleep(self, seconds):
        self.clock[0] += seconds

    def req(self, **kw):
        return DiskRequest.from_args(drbd_args(local=self.local, **kw))

    def drbdadm_calls(self):
        return [c[3:] for c in self.runner.calls if c[0] == DRBDADM84]


def test_create_on_the_primary_runs_create_md_up_and_forced_primary(tmp_path):
    node = Node(tmp_path, proc="")  # module loaded, minor not configured yet
    result = node.drbd.create(node.req())
    assert node.drbdadm_calls() == [["create-md", "--force", RESOURCE], ["up", RESOURCE],
                                    ["primary", "--force", RESOURCE]]
    assert result["path"] == "/dev/drbd0"
    assert result["logical_id"] == {"vg": "gnt", "data_lv": f"{DISK}.disk0_data", "meta_vg": "gnt",
                                    "meta_lv": f"{DISK}.disk0_meta", "resource": RESOURCE}
    assert node.vgs.lvs[("gnt", f"{DISK}.disk0_meta")]["size"] == 128
    assert all(env.get("__DRBD_NODE__") == "node1" for c, env in zip(node.runner.calls, node.runner.envs)
               if c[0] == DRBDADM84)


def test_create_on_the_secondary_does_not_promote(tmp_path):
    node = Node(tmp_path, local="node2", proc="")
    node.drbd.create(node.req())
    assert node.drbdadm_calls() == [["create-md", "--force", RESOURCE], ["up", RESOURCE]]


def test_a_standalone_create_on_a_new_secondary_attaches_without_connecting(tmp_path):
    node = Node(tmp_path, local="node2", proc="")
    result = node.drbd.create(node.req(), standalone=True)
    assert node.drbdadm_calls() == [["create-md", "--force", RESOURCE], ["new-resource", RESOURCE],
                                    ["new-minor", RESOURCE], ["attach", RESOURCE]]
    assert result["path"] == "/dev/drbd3"


def test_a_standalone_create_is_refused_on_the_primary(tmp_path):
    node = Node(tmp_path, proc="")
    with pytest.raises(ValidationError, match="standalone create is for a new secondary"):
        node.drbd.create(node.req(), standalone=True)
    assert node.runner.calls == []


def test_create_wipes_the_meta_lv_first_on_real_lvm(tmp_path):
    node = Node(tmp_path, proc="", driverloaded=True)
    node.drbd.create(node.req())
    programs = node.runner.programs()
    assert programs.index("dd") < programs.index("drbdadm-84")


def test_resource_file_is_private_and_holds_the_secret(tmp_path):
    node = Node(tmp_path, proc="")
    result = node.drbd.create(node.req())
    conf = result["config"]
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node.confdir).st_mode) == 0o700
    assert SECRET in Path(conf).read_text()


@needs_drbdadm84
def test_the_resource_file_the_executor_writes_passes_the_real_parser(tmp_path):
    node = Node(tmp_path, proc="")
    conf = node.drbd.create(node.req())["config"]
    assert adm_dry(conf, "node1", "up", RESOURCE).returncode == 0


def test_create_of_an_already_running_resource_changes_nothing(tmp_path):
    node = Node(tmp_path, proc="")
    node.drbd.create(node.req())
    node.proc.write_text(PROC_HEAD + proc_line(0, ro="Primary/Secondary"))
    node.runner.handlers["drbdsetup-84"] = lambda argv: CommandResult(argv, 0, sample("drbdsetup84_show.txt"), "")
    again = node.drbd.create(node.req())
    assert again["changed"] is False
    assert len(node.drbdadm_calls()) == 3


def test_create_without_the_kernel_module_fails_clearly_after_the_lvs(tmp_path):
    node = Node(tmp_path)  # no /proc/drbd
    with pytest.raises(StorageError, match="DRBD kernel module is not loaded"):
        node.drbd.create(node.req())
    assert ("gnt", f"{DISK}.disk0_data") in node.vgs.lvs
    assert node.drbdadm_calls() == []


def test_a_failing_drbdadm_reports_its_message_without_the_secret(tmp_path):
    node = Node(tmp_path, proc="")
    node.runner.handlers["drbdadm-84"] = lambda argv: CommandResult(
        argv, 10, "", "   found __DRBD_NODE__ in environment\n   PRETENDING that I am >>node1<<\n"
                      "Command 'drbdmeta 0 v08 /dev/gnt/x flex-external create-md' terminated with exit code 20\n")
    with pytest.raises(StorageError) as err:
        node.drbd.create(node.req())
    assert "create-md" in str(err.value) and "exit code 20" in str(err.value)
    assert "PRETENDING" not in str(err.value) and SECRET not in str(err.value)


def test_remove_takes_the_resource_down_and_removes_file_and_lvs(tmp_path):
    node = Node(tmp_path, proc="")
    conf = node.drbd.create(node.req())["config"]
    node.proc.write_text(PROC_HEAD + proc_line(0))
    result = node.drbd.remove(node.req())
    assert node.drbdadm_calls()[-1] == ["down", RESOURCE]
    assert not os.path.exists(conf)
    assert node.vgs.lvs == {}
    assert result["changed"] is True


def test_remove_of_nothing_changes_nothing(tmp_path):
    node = Node(tmp_path, proc="")
    assert node.drbd.remove(node.req()) == {"changed": False, "removed": []}


def test_grow_without_phase_extends_the_lv_and_resizes_only_on_the_secondary(tmp_path):
    primary, secondary = Node(tmp_path, "node1", proc=""), Node(tmp_path, "node2", proc="")
    for node in (primary, secondary):
        node.drbd.create(node.req())
        node.proc.write_text(PROC_HEAD + proc_line(0) + proc_line(3))
    primary.drbd.grow(primary.req(), 2048)
    secondary.drbd.grow(secondary.req(), 2048)
    assert primary.vgs.lvs[("gnt", f"{DISK}.disk0_data")]["size"] == 2048
    assert ["resize", RESOURCE] not in primary.drbdadm_calls()
    assert secondary.drbdadm_calls()[-1] == ["resize", RESOURCE]


def test_drbd_grow_never_shrinks(tmp_path):
    node = Node(tmp_path, proc="")
    node.drbd.create(node.req())
    with pytest.raises(StorageError, match="is 1024 MiB, requested 512 MiB: disks never shrink"):
        node.drbd.grow(node.req(), 512)


def test_assemble_on_the_primary_brings_up_and_promotes(tmp_path):
    node = Node(tmp_path, proc="")
    node.drbd.create(node.req())
    node.proc.write_text(PROC_HEAD)  # after a reboot: module loaded, nothing configured
    calls = len(node.runner.calls)
    result = node.drbd.assemble(node.req())
    assert [c[3:] for c in node.runner.calls[calls:] if c[0] == DRBDADM84] == [["adjust", RESOURCE],
                                                                               ["primary", RESOURCE]]
    assert result["path"] == "/dev/drbd0"


def test_set_mode_dual_on_the_source_allows_two_primaries_without_waiting(tmp_path):
    node = Node(tmp_path, proc=proc_line(0, ro="Primary/Secondary")).with_lvs()
    result = node.drbd.set_mode(node.req(), role="primary", dual_primary=True)
    assert node.drbdadm_calls() == [["net-options", "--allow-two-primaries=yes", RESOURCE]]
    assert result["steps"] == ["allow-two-primaries yes"]
    assert "allow-two-primaries yes;" in (node.confdir / f"{RESOURCE}.res").read_text()


def test_set_mode_dual_on_the_target_promotes_once_connected_and_uptodate(tmp_path):
    node = Node(tmp_path, local="node2", proc=proc_line(3, ro="Secondary/Primary")).with_lvs()
    node.drbd.set_mode(node.req(), role="primary", dual_primary=True)
    assert node.drbdadm_calls() == [["net-options", "--allow-two-primaries=yes", RESOURCE],
                                    ["primary", RESOURCE]]


def test_set_mode_dual_refuses_a_second_primary_while_not_connected(tmp_path):
    node = Node(tmp_path, local="node2", proc=proc_line(3, cs="WFConnection", ro="Secondary/Unknown",
                                                        ds="UpToDate/DUnknown")).with_lvs()
    with pytest.raises(StorageError, match="did not reach Connected and UpToDate/UpToDate .* cs:WFConnection"):
        node.drbd.set_mode(node.req(), role="primary", dual_primary=True, timeout=5)
    assert ["primary", RESOURCE] not in node.drbdadm_calls()


def test_set_mode_single_demotes_the_old_primary_then_forbids_two_primaries(tmp_path):
    node = Node(tmp_path, proc=proc_line(0, ro="Primary/Primary")).with_lvs()

    def demote(argv):
        if "secondary" in argv:
            node.proc.write_text(PROC_HEAD + proc_line(0, ro="Secondary/Primary"))
        return CommandResult(argv, 0, "", "")

    node.runner.handlers["drbdadm-84"] = demote
    node.drbd.set_mode(node.req(primary="node2"), role="secondary", dual_primary=False)
    assert node.drbdadm_calls() == [["secondary", RESOURCE],
                                    ["net-options", "--allow-two-primaries=no", RESOURCE]]


def test_set_mode_single_on_the_node_staying_primary_leaves_the_option_to_its_peer(tmp_path):
    node = Node(tmp_path, local="node2", proc=proc_line(3, ro="Primary/Primary")).with_lvs()
    result = node.drbd.set_mode(node.req(primary="node2"), role="primary", dual_primary=False)
    assert node.drbdadm_calls() == []
    assert "left to the peer" in result["steps"][0]


def test_promoting_an_outdated_disk_needs_force(tmp_path):
    node = Node(tmp_path, local="node2", proc=proc_line(3, cs="StandAlone", ro="Secondary/Unknown",
                                                        ds="Outdated/DUnknown")).with_lvs()
    with pytest.raises(StorageError, match="Outdated, not UpToDate: refusing"):
        node.drbd.set_mode(node.req(primary="node2"), role="primary", dual_primary=False)
    node.drbd.set_mode(node.req(primary="node2"), role="primary", dual_primary=False, force=True)
    assert node.drbdadm_calls()[-1] == ["primary", "--force", RESOURCE]


def test_assemble_of_a_running_resource_with_unchanged_file_runs_no_drbdadm(tmp_path):
    node = Node(tmp_path, proc="").with_lvs()
    node.drbd.write_config(DrbdDisk.from_request(node.req()))
    node.proc.write_text(PROC_HEAD + proc_line(0, ro="Primary/Secondary"))
    result = node.drbd.assemble(node.req())
    assert node.drbdadm_calls() == []
    assert result["changed"] is False


def test_assemble_applies_a_changed_peer_with_adjust(tmp_path):
    node = Node(tmp_path, proc="").with_lvs()
    node.drbd.write_config(DrbdDisk.from_request(node.req()))
    node.proc.write_text(PROC_HEAD + proc_line(0, ro="Primary/Secondary"))
    moved = node.req(nodes={"node1": {"address": "203.0.113.1", "minor": 0},
                            "node3": {"address": "203.0.113.3", "minor": 5}})
    node.drbd.assemble(moved)
    assert node.drbdadm_calls() == [["adjust", RESOURCE]]
    assert "on node3 {" in (node.confdir / f"{RESOURCE}.res").read_text()
