"""Consoles: instance_info's exact serial console command, and the VNC password (a secret)."""

import json
import os
import pty
import select
import socket
import subprocess
import threading
import time

import pytest

from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.ops import console as console_rule
from plugins.module_utils.herd.ops import views
from plugins.module_utils.herd.ops import instance as instance_op

PASSWORD = "s3cr#tPw"


def spec(**extra):
    base = {"name": "web1", "state": "running", "disk_template": "file", "disks": ["1G"], "memory": "256M",
            "vcpus": 1, "hypervisor": "kvm", "primary_node": "node1"}
    base.update(extra)
    return base


def row(ctx, name="web1"):
    return next(r for r in views.instance_info(ctx, live=False)["instances"] if r["name"] == name)


def test_instance_info_gives_the_exact_serial_console_command(cluster):
    instance_op.ensure(cluster, spec())
    console = row(cluster)["console"]
    socket_path = "/run/herd/kvm/web1.serial"
    assert console["node"] == "node1" and console["serial_socket"] == socket_path
    assert console["command"] == ["ssh", "-t", "root@node1", "socat", "STDIO,raw,echo=0,escape=0x1d",
                                  f"UNIX-CONNECT:{socket_path}"]
    assert console["command_line"] == f"ssh -t root@node1 socat STDIO,raw,echo=0,escape=0x1d UNIX-CONNECT:{socket_path}"
    assert console["escape"] == "^]"


def test_console_command_uses_the_nodes_ssh_port(cluster):
    config = cluster.store.load()
    config.cluster.ndparams["ssh_port"] = 2222
    cluster.store.save(config)
    instance_op.ensure(cluster, spec())
    assert row(cluster)["console"]["command"][:5] == ["ssh", "-t", "-p", "2222", "root@node1"]


def test_no_serial_command_when_the_serial_console_is_off(cluster):
    instance_op.ensure(cluster, spec(hvparams={"serial_console": False}))
    console = row(cluster)["console"]
    assert console["command"] is None and console["serial_socket"] is None


def test_loopback_vnc_is_reached_through_an_ssh_tunnel(cluster):
    instance_op.ensure(cluster, spec())
    vnc = row(cluster)["console"]["vnc"]
    port = cluster.store.load().instances["web1"].network_port
    assert vnc["address"] == "127.0.0.1" and vnc["port"] == port
    assert vnc["tunnel"] == f"ssh -L {port}:127.0.0.1:{port} root@node1"


def test_no_vnc_entry_when_vnc_is_off(cluster):
    instance_op.ensure(cluster, spec(hvparams={"vnc_bind_address": "none"}))
    assert row(cluster)["console"]["vnc"] is None


def test_fake_hypervisor_has_no_console(cluster):
    instance_op.ensure(cluster, spec(hypervisor="fake"))
    assert row(cluster)["console"] is None


# --- VNC password -------------------------------------------------------------

def test_vnc_password_on_a_loopback_console_is_refused_before_anything(cluster, nodes):
    with pytest.raises(ValidationError, match="non-local address") as err:
        instance_op.ensure(cluster, spec(vnc_password=PASSWORD))
    assert PASSWORD not in str(err.value)
    assert "web1" not in cluster.store.load().instances and nodes[0].disks == {}


@pytest.mark.parametrize("bad", ["123456789", "two words", "pässwd", "ab\ncd"])
def test_unusable_vnc_password_is_refused_without_echoing_it(cluster, bad):
    with pytest.raises(ValidationError, match="vnc_password") as err:
        instance_op.ensure(cluster, spec(vnc_password=bad, hvparams={"vnc_bind_address": "0.0.0.0"}))
    assert bad not in str(err.value)
    assert "web1" not in cluster.store.load().instances


def test_vnc_password_reaches_the_node_and_never_the_results_or_journal(cluster, nodes):
    result = instance_op.ensure(cluster, spec(vnc_password=PASSWORD, hvparams={"vnc_bind_address": "0.0.0.0"}))
    assert result["instance"]["vnc_password_set"] is True
    assert PASSWORD not in json.dumps(result)
    assert nodes[0].running["web1"]["vnc_password"] == PASSWORD
    journal = cluster.journal.list()
    assert journal and PASSWORD not in json.dumps(journal)
    listed = views.instance_info(cluster, live=False)
    assert PASSWORD not in json.dumps(listed) and listed["instances"][0]["console"]["vnc_password"] is True
    assert listed["instances"][0]["console"]["vnc"]["tunnel"] is None


def test_same_vnc_password_again_is_unchanged_and_a_new_one_is_a_change(cluster):
    hv = {"vnc_bind_address": "0.0.0.0"}
    instance_op.ensure(cluster, spec(vnc_password=PASSWORD, hvparams=hv))
    assert instance_op.ensure(cluster, spec(vnc_password=PASSWORD, hvparams=hv))["changed"] is False
    changed = instance_op.ensure(cluster, spec(vnc_password="other1", hvparams=hv, restart_on_change=True))
    assert changed["changed"] is True and "set the VNC password" in changed["actions"]
    assert "other1" not in json.dumps(changed)
    assert cluster.store.load().instances["web1"].vnc_password == "other1"


def test_empty_vnc_password_removes_it(cluster):
    hv = {"vnc_bind_address": "0.0.0.0"}
    instance_op.ensure(cluster, spec(vnc_password=PASSWORD, hvparams=hv))
    result = instance_op.ensure(cluster, spec(vnc_password="", hvparams=hv))
    assert result["changed"] is True and result["diff"]["after"]["vnc_password_set"] is False
    assert cluster.store.load().instances["web1"].vnc_password is None


def test_moving_vnc_to_loopback_with_a_password_set_is_refused(cluster):
    instance_op.ensure(cluster, spec(vnc_password=PASSWORD, hvparams={"vnc_bind_address": "0.0.0.0"}))
    with pytest.raises(ValidationError, match="non-local"):
        instance_op.ensure(cluster, spec(hvparams={"vnc_bind_address": "127.0.0.1"}))


# --- the command itself: socat on a real pseudo-terminal --------------------------

def test_the_serial_command_relays_keys_and_leaves_on_ctrl_close_bracket(tmp_path):
    """What the command runs on the node: keys typed reach the guest's socket, ^] ends it."""
    if not subprocess.run(["sh", "-c", "command -v socat"], capture_output=True, check=False).stdout:
        pytest.skip("socat is not installed")
    path = str(tmp_path / "web1.serial")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = bytearray()

    def guest():
        conn, _peer = server.accept()
        conn.sendall(b"login: ")
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(100)
                if not data:
                    return
                received.extend(data)
        except OSError:
            return

    thread = threading.Thread(target=guest, daemon=True)
    thread.start()
    master, slave = pty.openpty()
    proc = subprocess.Popen(console_rule.serial_attach_argv(path), stdin=slave, stdout=slave, stderr=slave,
                            close_fds=True)
    os.close(slave)
    try:
        shown = b""
        deadline = time.monotonic() + 10
        while b"login: " not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                shown += os.read(master, 100)
        assert b"login: " in shown
        os.write(master, b"root\x03")  # Ctrl-C goes to the guest (raw terminal), it does not end socat
        deadline = time.monotonic() + 10
        while bytes(received) != b"root\x03" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bytes(received) == b"root\x03" and proc.poll() is None
        os.write(master, b"\x1d")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        server.close()
