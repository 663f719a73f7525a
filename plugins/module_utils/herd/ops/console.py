"""How an operator reaches an instance's consoles (gnt-instance console).

The serial console is the unix socket QEMU listens on, on the instance's
primary node (hypervisor/kvm.py ``Paths.serial``). From the controller an
operator attaches with ``ssh -t root@NODE socat STDIO,raw,echo=0,escape=0x1d
UNIX-CONNECT:SOCKET``: the terminal is raw (the guest sees every key, Ctrl-C
included) and ``^]`` (0x1d, as with telnet and ``gnt-instance console``)
ends socat, which closes the SSH session. The VNC console is a TCP port on
the node's ``vnc_bind_address``.
"""

import ipaddress
import shlex
from typing import Any, Dict, List, Optional

from ..config import Config, Instance
from ..hypervisor.base import VNC_BASE_PORT
from .instance_spec import effective_hvparams

# socat's side of the console: raw terminal, no local echo, ^] quits
SOCAT_ARGS = ["socat", "STDIO,raw,echo=0,escape=0x1d"]
ESCAPE = "^]"


def serial_attach_argv(socket_path: str) -> List[str]:
    """The command, run on the node, that attaches the caller's terminal to the socket."""
    return SOCAT_ARGS + [f"UNIX-CONNECT:{socket_path}"]


def _ssh_argv(config: Config, node: str) -> List[str]:
    port = int(config.nodes[node].ndparams.get("ssh_port") or config.cluster.ndparams.get("ssh_port", 22))
    return ["ssh", "-t"] + (["-p", str(port)] if port != 22 else []) + [f"root@{node}"]


def is_local(address: Any) -> bool:
    """A VNC bind address only this node can reach (loopback)."""
    try:
        return ipaddress.ip_address(str(address)).is_loopback
    except ValueError:
        return False


def console(config: Config, inst: Instance) -> Optional[Dict[str, Any]]:
    """The ``console`` entry of instance_info: the serial command (argv and one shell line) and
    the VNC endpoint. None for hypervisors without consoles."""
    if inst.hypervisor != "kvm":
        return None
    hv = effective_hvparams(config, inst)
    node = inst.primary_node
    out: Dict[str, Any] = {"node": node, "escape": ESCAPE, "serial_socket": None, "command": None,
                           "command_line": None, "vnc": None, "vnc_password": bool(inst.vnc_password)}
    if hv.get("serial_console", True):
        # imported here: every instance operation imports this module (through ops.views), a module
        # task compiles all it imports (no bytecode cache in Ansible's payload), few need QEMU's paths
        from ..hypervisor.kvm import Paths

        socket_path = Paths(inst.name).serial
        argv = _ssh_argv(config, node) + serial_attach_argv(socket_path)
        out.update(serial_socket=socket_path, command=argv, command_line=" ".join(shlex.quote(a) for a in argv))
    bind = hv.get("vnc_bind_address")
    if inst.network_port is not None and inst.network_port >= VNC_BASE_PORT and bind not in ("", "none", None):
        host = node if bind in ("0.0.0.0", "::") else str(bind)
        out["vnc"] = {"address": str(bind), "port": inst.network_port,
                      "display": f"{host}:{inst.network_port - VNC_BASE_PORT}",
                      # a loopback-bound server is reached through an SSH tunnel to the node
                      "tunnel": (f"ssh -L {inst.network_port}:{bind}:{inst.network_port} root@{node}"
                                 if is_local(bind) else None)}
    return out
