"""The KVM/QEMU driver (node side, standard library only).

Per instance, under ``/run/herd/kvm/`` (``$HERD_RUN_DIR/kvm``):

- ``<name>.runtime.json``: the spec (with the resolved machine type), the
  command line, QEMU's version, the taps; a migration target builds the
  identical machine from it (Ganeti keeps ``conf/<name>.runtime`` the same way);
- ``<name>.pid`` (QEMU's ``-pidfile``), ``<name>.qmp`` (QMP),
  ``<name>.serial`` (serial console), ``<name>.log`` (QEMU's stdout and stderr).

The command line is built by the pure function ``build_command``. QEMU runs
in the foreground of its own session, confined (hypervisor/confine.py): the
launching process returns once QEMU answers on QMP (the machine is set up) or
has exited, and QEMU's own error message is in the log file. Migrations run
over TLS when the node holds the cluster's certificates (crypto.py).
A process counts as this instance's QEMU only when the pidfile's pid is
alive, is in this node's network namespace, and its command line has
``-name <name>`` and ``-pidfile <our pidfile>``.
"""

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional

from .. import crypto, names
from ..errors import ValidationError
from . import confine
from . import tap as taps
from .base import Hypervisor, HypervisorError, InstanceSpec, ensure_uefi_vars, run_dir, state_dir
from .qmp import QMP, QMPError

QEMU = "qemu-system-x86_64"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS_TEMPLATE = "/usr/share/OVMF/OVMF_VARS_4M.fd"
START_TIMEOUT = 120
KILL_WAIT = 10
# A live QEMU process whose guest does not run here (any other QEMU state counts as running).
STATUS_BY_QEMU = {"postmigrate": "migrated", "inmigrate": "incoming"}
# QOM ids of the migration TLS objects: the target's (command line) and the source's (QMP, per migration)
TLS_SERVER_ID = "herd-mig-tls"
TLS_AUTHZ_ID = "herd-mig-authz"
TLS_CLIENT_ID = "herd-mig-tls-client"
VNC_SECRET_ID = "herd-vnc-secret"


class IncomingTLS:
    """A migration target's TLS setup: the certificate directory and the peer identities admitted."""

    def __init__(self, directory: str, peers: List[str]):
        self.directory = directory
        self.peers = list(peers)

    def objects(self) -> List[str]:
        """``-object`` arguments: x509 server credentials that require a client certificate, and the
        authorization list (JSON syntax: a list of rules has no flat key=value form)."""
        authz = {"qom-type": "authz-list", "id": TLS_AUTHZ_ID, "policy": "deny",
                 "rules": [{"match": peer, "policy": "allow", "format": "exact"} for peer in self.peers]}
        return ["-object", f"tls-creds-x509,id={TLS_SERVER_ID},dir={_escape(self.directory)},endpoint=server,"
                           "verify-peer=on",
                "-object", json.dumps(authz, separators=(",", ":"))]


def kvm_dir() -> str:
    return os.path.join(run_dir(), "kvm")


class Paths:
    """The runtime files of one instance."""

    def __init__(self, name: str, base: Optional[str] = None):
        names.check_instance_name(name)
        base = base or kvm_dir()
        self.name = name
        self.pid = os.path.join(base, f"{name}.pid")
        self.qmp = os.path.join(base, f"{name}.qmp")
        self.serial = os.path.join(base, f"{name}.serial")
        self.runtime = os.path.join(base, f"{name}.runtime.json")
        self.log = os.path.join(base, f"{name}.log")
        # the VNC password QEMU reads (-object secret,file=...): 0600, root's
        self.vnc_secret = os.path.join(base, f"{name}.vnc-secret")

    def leftovers(self) -> List[str]:
        return [p for p in (self.pid, self.qmp, self.serial, self.runtime, self.log, self.vnc_secret)
                if os.path.exists(p)]


def _escape(value: str) -> str:
    """QEMU option values double a comma to keep it literal."""
    return value.replace(",", ",,")


def _host_port(address: str, port: int) -> str:
    ip = ipaddress.ip_address(address)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def build_command(spec: InstanceSpec, paths: Paths, machine: Optional[str] = None,
                  incoming: Optional[str] = None, qemu: str = QEMU,
                  ovmf_code: str = OVMF_CODE, runas: Optional[str] = None,
                  tls: Optional[IncomingTLS] = None) -> List[str]:
    """The QEMU command line for ``spec``: a pure function of its arguments.

    ``machine`` is the resolved machine type (pc -> pc-i440fx-7.2); without it
    the spec's ``machine`` or ``machine_type`` is used as it stands.
    ``incoming`` is a migration URI such as ``tcp:203.0.113.2:8102``; with
    ``tls`` the target listens only after its TLS parameters are set over QMP
    (``-incoming defer``, then ``migrate-incoming``).
    ``runas`` is the user QEMU drops to (hypervisor/confine.py); every QEMU runs
    in the seccomp sandbox, in the foreground (the sandbox forbids the fork of
    ``-daemonize``).
    """
    hv = spec.hvparams
    cmd = [qemu, "-name", spec.name, "-uuid", spec.uuid, "-nodefaults", "-no-user-config",
           "-machine", machine or spec.machine or hv["machine_type"], "-accel", hv["accel"]]
    if hv.get("cpu_type"):
        cmd += ["-cpu", hv["cpu_type"]]
    cmd += ["-m", str(spec.memory), "-smp", str(spec.vcpus),
            "-pidfile", paths.pid, "-sandbox", confine.sandbox(runas)]
    if runas:
        cmd += ["-runas", runas]
    cmd += ["-qmp", f"unix:{paths.qmp},server=on,wait=off"]
    cmd += ["-serial", f"unix:{paths.serial},server=on,wait=off" if hv["serial_console"] else "none"]
    cmd += ["-display", "none"]
    display = spec.vnc_display
    if display is not None:
        vnc = _host_port(hv["vnc_bind_address"], display)
        if spec.vnc_password_applies:
            # QEMU reads the password from the file: it is never on the command line (ps)
            cmd += ["-object", f"secret,id={VNC_SECRET_ID},format=raw,file={_escape(paths.vnc_secret)}"]
            vnc += f",password-secret={VNC_SECRET_ID}"
        cmd += ["-vga", "std", "-vnc", vnc]
    if hv["firmware"] == "uefi":
        cmd += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_escape(ovmf_code)}",
                "-drive", f"if=pflash,format=raw,unit=1,file={_escape(spec.uefi_vars or '')}"]
    if hv.get("kernel_path"):
        cmd += ["-kernel", hv["kernel_path"]]
        if hv.get("initrd_path"):
            cmd += ["-initrd", hv["initrd_path"]]
        append = (hv.get("kernel_args") or "").strip()
        if hv["serial_console"] and "console=" not in append:
            append = (append + " console=ttyS0").strip()
        if append:
            cmd += ["-append", append]
    boot = None if hv.get("kernel_path") else hv.get("boot_order", "disk")
    if boot:
        cmd += ["-boot", {"disk": "order=c", "cdrom": "order=d", "network": "order=n"}[boot]]
    # bootindex: the device the firmware tries first (1), then the first disk
    first = {"disk": "disk", "cdrom": "iso", "network": "nic"}.get(boot or "")
    cache = "writeback" if hv["disk_cache"] == "default" else hv["disk_cache"]
    scsi = hv.get("disk_type") == "scsi-hd"
    if scsi and spec.disks:
        cmd += ["-device", "virtio-scsi-pci,id=scsi0"]
    for index, disk in enumerate(spec.disks):
        # auto-read-only=off: the image stays open read-write when a migration source
        # inactivates it; with -drive's default QEMU reopens it read-only by path, which a
        # QEMU that dropped root cannot do in herd's 0700 instance directories
        cmd += ["-drive", f"file={_escape(disk.path)},format={disk.format},if=none,id=disk{index},"
                          f"cache={cache},aio={hv['disk_aio']},discard={hv.get('disk_discard', 'unmap')},"
                          "auto-read-only=off"]
        device = (f"scsi-hd,drive=disk{index},id=scsi-disk{index},bus=scsi0.0" if scsi
                  else f"virtio-blk-pci,drive=disk{index},id=virtio-disk{index}")
        if index == 0 and boot:
            device += ",bootindex=1" if first == "disk" else ",bootindex=2"
        cmd += ["-device", device]
    if spec.cdrom:
        cmd += ["-drive", f"file={_escape(spec.cdrom)},format=raw,if=none,id=cdrom0,media=cdrom,readonly=on",
                "-device", "ide-cd,drive=cdrom0,id=ide-cd0"]
    if hv.get("cdrom_image_path"):
        # the operator's ISO (an installer): a second CD, next to a cloud-init seed
        cmd += ["-drive", f"file={_escape(hv['cdrom_image_path'])},format=raw,if=none,id=cdrom1,media=cdrom,"
                          "readonly=on",
                "-device", "ide-cd,drive=cdrom1,id=ide-cd1" + (",bootindex=1" if first == "iso" else "")]
    for index, nic in enumerate(spec.nics):
        netdev = f"tap,id=net{index},ifname={taps.tap_name(spec.uuid, index)},script=no,downscript=no"
        if hv.get("vhost_net"):
            netdev += ",vhost=on"
        device = f"virtio-net-pci,netdev=net{index},id=virtio-net{index},mac={nic.mac}"
        if index == 0 and first == "nic":
            device += ",bootindex=1"
        cmd += ["-netdev", netdev, "-device", device]
    cmd += ["-device", "virtio-balloon-pci,id=balloon0"]
    # the operator's own arguments (validated in check_hvparams: none that herd manages)
    cmd += list(hv.get("kvm_extra") or [])
    if incoming and tls:
        cmd += tls.objects() + ["-incoming", "defer"]
    elif incoming:
        cmd += ["-incoming", incoming]
    return cmd


# --- node probes -------------------------------------------------------------

_machine_cache: Dict[str, str] = {}


def resolve_machine(machine_type: str, qemu: str = QEMU) -> str:
    """pc -> pc-i440fx-7.2, q35 -> pc-q35-7.2 (from ``qemu -machine help``)."""
    if machine_type in _machine_cache:
        return _machine_cache[machine_type]
    try:
        out = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HypervisorError(f"cannot run {qemu}: {exc}") from None
    resolved = machine_type
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == machine_type and "(alias of " in line:
            resolved = line.split("(alias of ", 1)[1].split(")", 1)[0].strip()
    _machine_cache[machine_type] = resolved
    return resolved


def qemu_version(qemu: str = QEMU) -> Optional[str]:
    from ..agent.facts import qemu_version as cached_qemu_version

    return cached_qemu_version(qemu)


def kvm_usable() -> Dict[str, Any]:
    from ..agent.facts import kvm_status

    return kvm_status()


def _reopened_files(spec: InstanceSpec) -> List[Optional[str]]:
    """The files QEMU may open again after it dropped root (hypervisor/confine.py)."""
    # not cdrom_image_path: an installer ISO others may share, opened read-only at start
    return [d.path for d in spec.disks] + [spec.cdrom, spec.uefi_vars]


def _uid_pool() -> Optional[str]:
    """This node's uid pool range (``/etc/herd/node.json``, written by the node_hypervisor role)."""
    from ..agent.facts import node_settings

    value = node_settings().get("uid_pool")
    return str(value) if value else None


def _incoming_tls() -> Optional[IncomingTLS]:
    """The target's TLS setup when this node holds the cluster's certificates; it then accepts
    nothing else. The admitted peers are the cluster's nodes, from this node's ssconf."""
    if not crypto.installed():
        return None
    from ..config import SSCONF_NAME, read_json
    from ..errors import ConfigError

    path = os.path.join(state_dir(), SSCONF_NAME)
    try:
        ssconf = read_json(path, "ssconf")
    except ConfigError as exc:
        raise HypervisorError(f"node {node_name()} has the cluster's migration certificates but cannot read "
                              f"its ssconf to know the cluster's nodes: {exc}") from None
    nodes = ssconf.get("nodes") or []
    return IncomingTLS(crypto.crypto_dir(), crypto.peer_dns(nodes, str(ssconf.get("cluster_uuid"))))


def node_name() -> str:
    return socket.gethostname()


def _netns() -> Optional[int]:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


def _cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _arg_after(argv: List[str], flag: str) -> Optional[str]:
    for i, arg in enumerate(argv[:-1]):
        if arg == flag:
            return argv[i + 1]
    return None


def is_our_qemu(pid: int, paths: Paths) -> bool:
    """``pid`` is alive, in this network namespace, and is QEMU for this instance and pidfile."""
    if pid <= 1 or not _alive(pid):
        return False
    argv = _cmdline(pid)
    if not argv or "qemu" not in os.path.basename(argv[0]):
        return False
    name = (_arg_after(argv, "-name") or "").split(",", 1)[0]
    if name.startswith("guest="):
        name = name[len("guest="):]
    if name != paths.name or _arg_after(argv, "-pidfile") != paths.pid:
        return False
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == _netns()
    except OSError:
        return False


def _read_pidfile(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _scan_qemus(base: str) -> Dict[str, int]:
    """QEMU processes of this node whose -pidfile lies in ``base``: name -> pid."""
    found: Dict[str, int] = {}
    ours = _netns()
    prefix = base.rstrip("/") + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _cmdline(int(entry))
        if not argv or "qemu" not in os.path.basename(argv[0]):
            continue
        pidfile = _arg_after(argv, "-pidfile") or ""
        if not (pidfile.startswith(prefix) and pidfile.endswith(".pid")):
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != ours:
                continue
        except OSError:
            continue
        name = pidfile[len(prefix):-len(".pid")]
        if "/" not in name and _alive(int(entry)):
            found[name] = int(entry)
    return found


def find_pid(paths: Paths) -> Optional[int]:
    pid = _read_pidfile(paths.pid)
    if pid and is_our_qemu(pid, paths):
        return pid
    # the pidfile may be gone while the process lives on (deleted by hand, a crash)
    pid = _scan_qemus(os.path.dirname(paths.pid)).get(paths.name)
    return pid if pid and is_our_qemu(pid, paths) else None


def read_runtime(paths: Paths) -> Optional[Dict[str, Any]]:
    try:
        with open(paths.runtime, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def write_runtime(paths: Paths, data: Dict[str, Any]) -> None:
    tmp = paths.runtime + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, paths.runtime)


def write_secret(path: str, text: str) -> None:
    """A secret file, 0600 from its creation, replaced atomically."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _wait_gone(pid: int, paths: Paths, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_our_qemu(pid, paths):
            return True
        time.sleep(0.1)
    return not is_our_qemu(pid, paths)


def _kill(pid: int, paths: Paths) -> None:
    """SIGTERM (QEMU exits cleanly), then SIGKILL; returns when the process is gone."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, KILL_WAIT)):
        if not is_our_qemu(pid, paths):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(pid, paths, wait):
            return
    raise HypervisorError(f"QEMU process {pid} of {paths.name} does not die on SIGKILL")


def _qmp_status(paths: Paths, timeout: float = 5) -> Optional[str]:
    try:
        with QMP(paths.qmp, timeout=timeout) as qmp:
            return qmp.execute("query-status").get("status")
    except QMPError:
        return None


class KVM(Hypervisor):
    name = "kvm"

    def __init__(self, qemu: str = QEMU):
        self.qemu = qemu

    # --- checks --------------------------------------------------------------

    def check_node(self, hvparams: Dict[str, Any]) -> List[str]:
        problems: List[str] = []
        node = node_name()
        if not shutil.which(self.qemu):
            problems.append(f"{self.qemu} is not installed on node {node} (Debian package qemu-system-x86)")
        else:
            problem = self._check_cpu_model(hvparams.get("cpu_type") or "", node)
            if problem:
                problems.append(problem)
        if hvparams["accel"] == "kvm":
            status = kvm_usable()
            if not status.get("usable"):
                problems.append(f"accel kvm is not usable on node {node}: {status.get('reason')}; "
                                "set hvparams.accel: tcg to run without hardware acceleration (slow)")
        for key in ("kernel_path", "initrd_path"):
            if hvparams.get(key) and not os.path.isfile(hvparams[key]):
                problems.append(f"{key} {hvparams[key]} does not exist on node {node}")
        if hvparams["firmware"] == "uefi":
            for path in (OVMF_CODE, OVMF_VARS_TEMPLATE):
                if not os.path.isfile(path):
                    problems.append(f"firmware uefi needs {path} on node {node} (Debian package ovmf)")
        problem = confine.check_node(hvparams, _uid_pool())
        if problem:
            problems.append(f"{problem} (node {node})")
        if hvparams.get("cdrom_image_path") and not os.path.isfile(hvparams["cdrom_image_path"]):
            problems.append(f"cdrom_image_path {hvparams['cdrom_image_path']} does not exist on node {node}")
        if hvparams.get("vhost_net") and not os.path.exists("/dev/vhost-net"):
            problems.append(f"vhost_net needs /dev/vhost-net on node {node} (kernel module vhost_net)")
        return problems

    def _check_cpu_model(self, cpu_type: str, node: str) -> Optional[str]:
        """A cpu_type whose model this node's QEMU lacks fails only when QEMU starts: say so first."""
        model = cpu_type.split(",", 1)[0]
        if not model:
            return None
        from ..agent.facts import node_settings, qemu_cpu_models

        known = qemu_cpu_models(self.qemu)
        if known is None or model in known:
            return None
        chosen = node_settings().get("cpu_type_cluster")
        hint = f"; node_hypervisor chose {chosen} for this cluster's CPUs" if chosen in known else ""
        return (f"hvparams.cpu_type {cpu_type!r}: QEMU {qemu_version(self.qemu) or ''} on node {node} has no CPU "
                f"model {model!r} (`{self.qemu} -cpu help` lists those it has{hint})")

    def check(self, spec: InstanceSpec) -> List[str]:
        node = node_name()
        problems = self.check_node(spec.hvparams)
        for index, disk in enumerate(spec.disks):
            if not os.path.exists(disk.path):
                problems.append(f"disk {index} of {spec.name}: {disk.path} does not exist on node {node}")
        if spec.cdrom and not os.path.exists(spec.cdrom):
            problems.append(f"cdrom of {spec.name}: {spec.cdrom} does not exist on node {node}")
        for index, nic in enumerate(spec.nics):
            problem = taps.check_link(nic.link, nic.mode, nic.vlan, f"NIC {index} of {spec.name}")
            if problem:
                problems.append(problem)
        return problems

    # --- start / stop ----------------------------------------------------------

    def _launch(self, spec: InstanceSpec, paths: Paths, incoming: Optional[str],
                tls: Optional[IncomingTLS] = None) -> Dict[str, Any]:
        """Create taps, run QEMU, return the runtime record. Cleans up on failure.

        A migration target leaves the files' owner alone: the source QEMU, under its own
        user, may reopen a shared disk until it has handed the guest over; the target
        takes them at ``migration_finalize``.
        """
        problems = self.check(spec)
        if problems:
            raise HypervisorError("; ".join(problems))
        os.makedirs(os.path.dirname(paths.pid), mode=0o750, exist_ok=True)
        if spec.hvparams["firmware"] == "uefi" and spec.uefi_vars:
            # the instance's own variables file: copied once (0600), then kept with the instance
            ensure_uefi_vars(spec.uefi_vars, OVMF_VARS_TEMPLATE)
        if not spec.machine:
            spec.machine = resolve_machine(spec.hvparams["machine_type"], self.qemu)
        if spec.vnc_password_applies:
            write_secret(paths.vnc_secret, spec.vnc_password or "")
        created: List[str] = []
        # the pool user is taken once QEMU runs as it: choosing and starting is one step per node
        with confine.pool_lock():
            runas = confine.choose_user(spec.hvparams, _uid_pool())
            argv = build_command(spec, paths, incoming=incoming, qemu=self.qemu, runas=runas, tls=tls)
            try:
                if not incoming:
                    confine.give(_reopened_files(spec), runas)
                for index, nic in enumerate(spec.nics):
                    name = taps.tap_name(spec.uuid, index)
                    taps.create(name, nic.link, nic.vlan, f"NIC {index} of {spec.name}", spec.uuid, spec.name,
                                mode=nic.mode)
                    created.append(name)
                with open(paths.log, "w", encoding="utf-8") as log:
                    log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n")
                    log.flush()
                    # its own session: QEMU outlives the agent and the SSH session that started it
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            close_fds=True, start_new_session=True)
                pid = self._wait_started(proc, paths, spec.name)
                if incoming and tls:
                    with QMP(paths.qmp, timeout=30) as qmp:
                        qmp.execute("migrate-set-parameters", {"tls-creds": TLS_SERVER_ID, "tls-authz": TLS_AUTHZ_ID})
                        qmp.execute("migrate-incoming", {"uri": incoming})
            except BaseException:
                stray = find_pid(paths)
                if stray:
                    _kill(stray, paths)
                self._cleanup_files(paths, created, remove_runtime=False)
                raise
        runtime = {"spec": spec.to_dict(), "argv": argv, "pid": pid, "taps": created,
                   "qemu_version": qemu_version(self.qemu), "node": node_name(),
                   "started": time.time(), "incoming": incoming, "runas": runas, "tls": bool(incoming and tls)}
        write_runtime(paths, runtime)
        return runtime

    def _wait_started(self, proc: "subprocess.Popen[bytes]", paths: Paths, name: str) -> int:
        """Wait until QEMU answers on QMP (the machine is set up) or exits; its pid."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = proc.poll()
            if code is not None:
                raise HypervisorError(f"QEMU failed to start {name} on node {node_name()}: "
                                      f"{self._log_tail(paths) or f'exit status {code}'}")
            pid = _read_pidfile(paths.pid)
            if pid == proc.pid and os.path.exists(paths.qmp) and _qmp_status(paths, timeout=5) is not None:
                if not is_our_qemu(pid, paths):
                    raise HypervisorError(f"QEMU for {name} exited right after starting on node "
                                          f"{node_name()}: {self._log_tail(paths) or 'no message'}")
                return pid
            if time.monotonic() > deadline:
                raise HypervisorError(f"QEMU did not finish starting {name} within {START_TIMEOUT} s "
                                      f"on node {node_name()}: {self._log_tail(paths)}")
            time.sleep(0.05)

    @staticmethod
    def _log_tail(paths: Paths) -> str:
        try:
            with open(paths.log, encoding="utf-8", errors="replace") as handle:
                lines = [line.rstrip() for line in handle if line.strip() and not line.startswith("# ")]
        except OSError:
            return ""
        return " / ".join(lines[-10:])[-3000:]

    def _cleanup_files(self, paths: Paths, tap_names: Optional[List[str]] = None, remove_runtime: bool = True,
                       keep_log: bool = False) -> List[str]:
        removed: List[str] = []
        runtime = read_runtime(paths) or {}
        for name in sorted(set((tap_names or []) + runtime.get("taps", []) + taps.instance_taps(paths.name))):
            if taps.remove(name, paths.name):
                removed.append(f"tap {name}")
        for path in (paths.pid, paths.qmp, paths.serial, paths.log, paths.runtime, paths.vnc_secret):
            if path == paths.runtime and not remove_runtime:
                continue
            if path == paths.log and keep_log:
                continue
            try:
                os.unlink(path)
                removed.append(path)
            except FileNotFoundError:
                pass
        return removed

    def start(self, spec: InstanceSpec) -> Dict[str, Any]:
        paths = Paths(spec.name)
        pid = find_pid(paths)
        if pid:
            state = _qmp_status(paths)
            if state in STATUS_BY_QEMU:
                raise HypervisorError(f"instance {spec.name} has a QEMU on node {node_name()} that is "
                                      f"{STATUS_BY_QEMU[state]} ({state}); finalize or abort that migration first")
            runtime = read_runtime(paths) or {}
            stored = dict(runtime.get("spec") or {})
            stored.pop("machine", None)
            wanted = spec.to_dict()
            wanted.pop("machine", None)
            return {"name": spec.name, "changed": False, "pid": pid, "status": "running",
                    "runtime_differs": stored != wanted, **self._endpoints(spec, paths)}
        cleaned = self._cleanup_files(paths)
        runtime = self._launch(spec, paths, incoming=None)
        return {"name": spec.name, "changed": True, "pid": runtime["pid"], "status": "running",
                "machine": spec.machine, "taps": runtime["taps"], "cleaned": cleaned,
                **self._endpoints(spec, paths)}

    @staticmethod
    def _endpoints(spec: InstanceSpec, paths: Paths) -> Dict[str, Any]:
        display = spec.vnc_display
        return {"qmp": paths.qmp, "serial": paths.serial if spec.hvparams["serial_console"] else None,
                "vnc": (_host_port(spec.hvparams["vnc_bind_address"], spec.network_port)
                        if display is not None and spec.network_port else None)}

    def stop(self, name: str, timeout: float = 120, force: bool = False) -> Dict[str, Any]:
        paths = Paths(name)
        pid = find_pid(paths)
        method = None
        if pid:
            method = "kill"
            # a QEMU whose guest is elsewhere (migrated / incoming) has nobody to press the button
            if not force and _qmp_status(paths) not in STATUS_BY_QEMU:
                try:
                    with QMP(paths.qmp, timeout=5) as qmp:
                        qmp.execute("system_powerdown")
                    if _wait_gone(pid, paths, timeout):
                        method = "acpi"
                except QMPError:
                    pass
            if method == "kill":
                _kill(pid, paths)
        cleaned = self._cleanup_files(paths)
        return {"name": name, "changed": bool(pid or cleaned), "was_running": bool(pid), "method": method,
                "cleaned": cleaned}

    def reboot(self, name: str, spec: Optional[InstanceSpec] = None, timeout: float = 120,
               kind: str = "hard") -> Dict[str, Any]:
        paths = Paths(name)
        if kind == "reset":
            if not find_pid(paths):
                raise HypervisorError(f"instance {name} is not running on node {node_name()}")
            with QMP(paths.qmp) as qmp:
                qmp.execute("system_reset")
            return {"name": name, "changed": True, "kind": kind}
        if kind != "hard":
            raise ValidationError(f"reboot type {kind!r} is not one of ['hard', 'reset']")
        if spec is None:
            runtime = read_runtime(paths)
            if not runtime:
                raise HypervisorError(f"instance {name} has no runtime file on node {node_name()}; "
                                      "give the spec to start it")
            spec = InstanceSpec.from_dict(runtime["spec"])
            spec.machine = None  # resolve again: the restart may follow a QEMU upgrade
        stopped = self.stop(name, timeout=timeout)
        started = self.start(spec)
        return {"name": name, "changed": True, "kind": kind, "stop": stopped, "start": started}

    # --- status ----------------------------------------------------------------

    def status(self, name: str) -> Dict[str, Any]:
        paths = Paths(name)
        pid = find_pid(paths)
        runtime = read_runtime(paths)
        if pid:
            qemu_status = _qmp_status(paths)
            result: Dict[str, Any] = {"name": name, "status": STATUS_BY_QEMU.get(qemu_status or "", "running"),
                                      "pid": pid, "qemu_status": qemu_status}
            if result["status"] == "migrated":
                result["detail"] = "the guest migrated away; this QEMU waits for migration_finalize"
            elif result["status"] == "incoming":
                result["detail"] = "waiting for an incoming migration"
            elif runtime is None:
                result["detail"] = "running without a runtime file"
            return result
        leftovers = [os.path.basename(p) for p in paths.leftovers()] + taps.instance_taps(name)
        if leftovers:
            stale = _read_pidfile(paths.pid)
            why = f"QEMU process {stale} from the pidfile is gone" if stale else "no QEMU process"
            return {"name": name, "status": "error", "pid": None, "qemu_status": None,
                    "detail": f"{why}; left behind: {', '.join(leftovers)}"}
        return {"name": name, "status": "stopped", "pid": None, "qemu_status": None}

    def list_instances(self) -> Dict[str, Dict[str, Any]]:
        base = kvm_dir()
        candidates = set()
        try:
            for entry in os.listdir(base):
                for suffix in (".pid", ".runtime.json", ".qmp", ".serial"):
                    if entry.endswith(suffix):
                        candidates.add(entry[:-len(suffix)])
        except OSError:
            pass
        candidates.update(_scan_qemus(base))
        result = {}
        for name in sorted(candidates):
            try:
                names.check_instance_name(name)
            except ValidationError:
                continue
            info = self.status(name)
            runtime = read_runtime(Paths(name)) or {}
            spec = runtime.get("spec") or {}
            argv = _cmdline(info["pid"]) if info.get("pid") else []
            info["memory"] = int(_arg_after(argv, "-m") or spec.get("memory") or 0)
            info["vcpus"] = int((_arg_after(argv, "-smp") or str(spec.get("vcpus") or 0)).split(",")[0])
            info["hypervisor"] = "kvm"
            result[name] = info
        return result

    def info(self, name: str) -> Dict[str, Any]:
        paths = Paths(name)
        result = self.status(name)
        runtime = read_runtime(paths)
        if runtime and isinstance(runtime.get("spec"), dict) and runtime["spec"].get("vnc_password"):
            runtime["spec"]["vnc_password"] = "********"
        result["runtime"] = runtime
        result["taps"] = [taps.info(t) for t in taps.instance_taps(name)]
        result["paths"] = {"pid": paths.pid, "qmp": paths.qmp, "serial": paths.serial,
                           "runtime": paths.runtime, "log": paths.log}
        if result.get("pid"):
            try:
                with QMP(paths.qmp, timeout=5) as qmp:
                    result["balloon_mib"] = qmp.execute("query-balloon").get("actual", 0) // 2**20
                    result["vcpus_online"] = len(qmp.execute("query-cpus-fast"))
            except QMPError as exc:
                result["qmp_error"] = str(exc)
        return result

    def cleanup(self, name: str) -> Dict[str, Any]:
        paths = Paths(name)
        if find_pid(paths):
            raise HypervisorError(f"instance {name} is running on node {node_name()}; stop it instead")
        cleaned = self._cleanup_files(paths)
        return {"name": name, "changed": bool(cleaned), "cleaned": cleaned}

    # --- migration (ganeti.md §4b) ---------------------------------------------

    def _running(self, name: str) -> "tuple[Paths, int]":
        paths = Paths(name)
        pid = find_pid(paths)
        if not pid:
            raise HypervisorError(f"instance {name} is not running on node {node_name()}")
        return paths, pid

    def migration_info(self, name: str) -> Dict[str, Any]:
        paths, _pid = self._running(name)
        runtime = read_runtime(paths)
        if not runtime:
            raise HypervisorError(f"instance {name} runs on node {node_name()} without a runtime file")
        return {"name": name, "runtime": {k: runtime.get(k) for k in ("spec", "argv", "qemu_version", "node")}}

    def migration_accept(self, runtime: Dict[str, Any], address: str, port: Optional[int]) -> Dict[str, Any]:
        if not isinstance(runtime, dict) or not isinstance(runtime.get("spec"), dict):
            raise ValidationError("migration_accept needs the source's runtime (migration_info) with its spec")
        spec = InstanceSpec.from_dict(runtime["spec"])
        if not spec.machine:
            raise ValidationError(f"runtime of {spec.name} has no resolved machine type")
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            raise ValidationError(f"migration address {address!r} is not an IP address") from None
        port = 0 if port is None else int(port)
        if not 0 <= port <= 65535:
            raise ValidationError(f"migration port {port} is out of range")
        paths = Paths(spec.name)
        if find_pid(paths):
            raise HypervisorError(f"instance {spec.name} already runs on node {node_name()}; "
                                  "refusing to accept a migration")
        self._cleanup_files(paths)
        warnings = []
        here = qemu_version(self.qemu)
        if runtime.get("qemu_version") and here != runtime["qemu_version"]:
            warnings.append(f"QEMU version differs: source {runtime['qemu_version']}, target {here}")
        tls = _incoming_tls()
        record = self._launch(spec, paths, incoming=f"tcp:{_host_port(str(ip), port)}", tls=tls)
        if port == 0:
            try:
                with QMP(paths.qmp) as qmp:
                    sockets = qmp.execute("query-migrate").get("socket-address") or []
                port = int(sockets[0]["port"])
            except (QMPError, LookupError, ValueError) as exc:
                self.migration_abort(spec.name, "target")
                raise HypervisorError(f"cannot learn the incoming migration port of {spec.name}: {exc}") from None
        record["incoming_port"] = port
        write_runtime(paths, record)
        return {"name": spec.name, "changed": True, "pid": record["pid"], "address": str(ip), "port": port,
                "taps": record["taps"], "warnings": warnings, "tls": tls is not None}

    def migration_start(self, name: str, address: str, port: int, live: bool = True,
                        bandwidth: Optional[int] = None, downtime: Optional[int] = None) -> Dict[str, Any]:
        paths, pid = self._running(name)
        runtime = read_runtime(paths) or {}
        hv = (runtime.get("spec") or {}).get("hvparams") or {}
        bandwidth = int(bandwidth or hv.get("migration_bandwidth") or 32)
        downtime = int(downtime or hv.get("migration_downtime") or 30)
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            raise ValidationError(f"migration address {address!r} is not an IP address") from None
        if not 1 <= int(port) <= 65535:
            raise ValidationError(f"migration port {port} is out of range")
        with QMP(paths.qmp, timeout=30) as qmp:
            current = qmp.execute("query-migrate").get("status")
            if current in ("setup", "active", "pre-switchover", "device", "cancelling", "postcopy-active"):
                raise HypervisorError(f"a migration of {name} is already in progress ({current})")
            if not live:
                qmp.execute("stop")
            tls = crypto.installed()
            if tls:
                self._client_tls(qmp, pid)
            qmp.execute("migrate-set-parameters", {"max-bandwidth": bandwidth * 2**20, "downtime-limit": downtime,
                                                   "tls-creds": TLS_CLIENT_ID if tls else ""})
            try:
                qmp.execute("migrate", {"uri": f"tcp:{_host_port(str(ip), int(port))}"})
            except QMPError:
                if not live:
                    qmp.execute("cont")
                raise
            status = qmp.execute("query-migrate").get("status")
        return {"name": name, "changed": True, "status": status, "live": live, "bandwidth": bandwidth,
                "downtime": downtime, "tls": tls}

    @staticmethod
    def _client_tls(qmp: QMP, pid: int) -> None:
        """Load this node's current certificates into the source QEMU as the migration's client credentials.

        QEMU reads them at ``object-add`` (so a renewed certificate counts from the next migration on), as
        the user it runs as: they are handed over in a private copy owned by that user, removed at once.
        """
        try:
            qmp.execute("object-del", {"id": TLS_CLIENT_ID})
        except QMPError:
            pass  # none loaded yet
        uid = confine.process_uid(pid)
        copy = tempfile.mkdtemp(prefix="herd-tls-")
        try:
            for filename in (crypto.CA_CERT, "client-cert.pem", "client-key.pem"):
                target = os.path.join(copy, filename)
                shutil.copyfile(os.path.join(crypto.crypto_dir(), filename), target)
                os.chmod(target, 0o600)
                if uid:
                    os.chown(target, uid, -1)
            if uid:
                os.chown(copy, uid, -1)
            qmp.execute("object-add", {"qom-type": "tls-creds-x509", "id": TLS_CLIENT_ID, "dir": copy,
                                       "endpoint": "client", "verify-peer": True})
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    def migration_status(self, name: str) -> Dict[str, Any]:
        paths = Paths(name)
        pid = find_pid(paths)
        if not pid:
            return {"name": name, "status": "failed",
                    "error": f"QEMU of {name} is not running on node {node_name()}", "process": False}
        try:
            with QMP(paths.qmp) as qmp:
                info = qmp.execute("query-migrate")
                run_state = qmp.execute("query-status").get("status")
        except QMPError as exc:
            return {"name": name, "status": "unknown", "error": str(exc), "process": True}
        ram = info.get("ram") or {}
        error = info.get("error-desc")
        if info.get("status") == "failed" and not error:
            # QEMU 7.2 leaves error-desc empty for some failures (a disk it could not hand over)
            # and prints the reason on its stderr, the log
            error = self._log_tail(paths) or None
        return {"name": name, "status": info.get("status", "none"), "process": True, "qemu_status": run_state,
                "transferred": ram.get("transferred"), "total": ram.get("total"),
                "remaining": ram.get("remaining"), "total_time_ms": info.get("total-time"),
                "downtime_ms": info.get("downtime"), "expected_downtime_ms": info.get("expected-downtime"),
                "dirty_sync_count": ram.get("dirty-sync-count"), "error": error}

    def migration_abort(self, name: str, role: str, resume_completed: bool = False) -> Dict[str, Any]:
        paths = Paths(name)
        if role == "target":
            pid = find_pid(paths)
            if pid:
                _kill(pid, paths)
            cleaned = self._cleanup_files(paths)
            return {"name": name, "role": role, "changed": bool(pid or cleaned), "killed": bool(pid)}
        if role != "source":
            raise ValidationError(f"role {role!r} is not one of ['source', 'target']")
        _paths, _pid = self._running(name)
        with QMP(paths.qmp, timeout=30) as qmp:
            before = qmp.execute("query-migrate").get("status")
            if before not in ("completed", "failed", "cancelled", "none", None):
                qmp.execute("migrate_cancel")
            deadline = time.monotonic() + 30
            status = before
            while time.monotonic() < deadline:
                status = qmp.execute("query-migrate").get("status")
                if status not in ("cancelling", "active", "setup", "device", "pre-switchover"):
                    break
                time.sleep(0.2)
            run_state = qmp.execute("query-status").get("status")
            resumed = False
            # a paused source (non-live, or stopped at the switch-over) runs on; after a
            # completed migration only when the master says the target does not run it
            if run_state in ("paused", "postmigrate", "finish-migrate") and \
                    (status != "completed" or resume_completed):
                qmp.execute("cont")
                resumed = True
                run_state = qmp.execute("query-status").get("status")
        return {"name": name, "role": role, "changed": before != status or resumed, "status": status,
                "resumed": resumed, "qemu_status": run_state}

    def migration_finalize(self, name: str, role: str, success: bool) -> Dict[str, Any]:
        paths = Paths(name)
        if role == "target":
            if not success:
                return self.migration_abort(name, "target")
            pid = find_pid(paths)
            if not pid:
                raise HypervisorError(f"migrated instance {name} is not running on target node {node_name()}: "
                                      f"{self._log_tail(paths) or 'QEMU is gone'}")
            run_state = self._wait_state(paths, ("running", "paused"), 60)
            if run_state == "paused":  # non-live: the source was stopped before the copy
                with QMP(paths.qmp) as qmp:
                    qmp.execute("cont")
                run_state = _qmp_status(paths)
            if run_state != "running":
                raise HypervisorError(f"migrated instance {name} on node {node_name()} is {run_state}, not running")
            runtime = read_runtime(paths) or {}
            # the source has inactivated its disks: from now on they are this QEMU's
            if runtime.get("runas") and isinstance(runtime.get("spec"), dict):
                confine.give(_reopened_files(InstanceSpec.from_dict(runtime["spec"])), runtime["runas"])
            runtime.update({"incoming": None, "migrated": time.time()})
            runtime.pop("incoming_port", None)
            write_runtime(paths, runtime)
            return {"name": name, "role": role, "changed": True, "pid": pid, "qemu_status": run_state}
        if role != "source":
            raise ValidationError(f"role {role!r} is not one of ['source', 'target']")
        pid = find_pid(paths)
        if success:
            if pid:
                with QMP(paths.qmp) as qmp:
                    migrated = qmp.execute("query-migrate").get("status")
                    run_state = qmp.execute("query-status").get("status")
                if migrated != "completed" and run_state != "postmigrate":
                    raise HypervisorError(f"refusing to kill {name} on node {node_name()}: its migration is "
                                          f"{migrated} and QEMU is {run_state}")
                _kill(pid, paths)
            cleaned = self._cleanup_files(paths)
            return {"name": name, "role": role, "changed": bool(pid or cleaned), "killed": bool(pid)}
        # failure: the instance stays here; resume it if the migration left it paused
        if not pid:
            cleaned = self._cleanup_files(paths)
            return {"name": name, "role": role, "changed": bool(cleaned), "resumed": False,
                    "status": "error", "detail": "the source QEMU is gone too", "cleaned": cleaned}
        resumed = False
        with QMP(paths.qmp) as qmp:
            run_state = qmp.execute("query-status").get("status")
            if run_state in ("paused", "postmigrate", "finish-migrate"):
                qmp.execute("cont")
                resumed = True
                run_state = qmp.execute("query-status").get("status")
        return {"name": name, "role": role, "changed": resumed, "resumed": resumed, "qemu_status": run_state}

    def disk_grown(self, name: str, index: int, size: int) -> Dict[str, Any]:
        """Tell the running guest that disk ``index`` grew to ``size`` MiB (QMP block_resize on the
        drive the command line names disk<index>); the guest sees the new size without a restart."""
        paths, _pid = self._running(name)
        with QMP(paths.qmp, timeout=30) as qmp:
            qmp.execute("block_resize", {"device": f"disk{index}", "size": size * 2**20})
        return {"name": name, "changed": True, "index": index, "size": size}

    @staticmethod
    def _wait_state(paths: Paths, wanted: "tuple[str, ...]", timeout: float) -> Optional[str]:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = _qmp_status(paths)
            if state in wanted:
                return state
            time.sleep(0.2)
        return state
