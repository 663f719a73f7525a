"""RPC from the master to the herd-node agents over SSH (paramiko).

``herd-node`` reads one JSON request on stdin and writes one JSON answer on
stdout. The remote command is the fixed agent path; every argument travels in
the JSON, so nothing is ever interpolated into a shell.

Host keys: a node's keys are recorded in the cluster config at node add, read
only from herd's own managed block of the master's known_hosts, which the
node_base role fills from the keys the nodes present to Ansible. Any other line
of that file (an operator's ``ssh`` accepting a key on first use, another tool)
is never taken. Afterwards only the recorded keys are accepted (RejectPolicy);
there is no trust-on-first-use anywhere.
"""

import json
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import RpcError
from .version import AGENT_REINSTALL_HINT, VERSION

AGENT_PATH = "/usr/local/lib/herd/herd-node"


@dataclass
class Endpoint:
    name: str
    address: str
    port: int = 22
    host_keys: Dict[str, str] = field(default_factory=dict)


# The block the node_base role manages in known_hosts (ansible.builtin.blockinfile markers).
MANAGED_BLOCK = "herd cluster host keys (herd.cluster.node_base)"


def managed_known_hosts_lines(known_hosts: str) -> List[str]:
    """The lines of herd's managed block of ``known_hosts``, and nothing else of the file."""
    try:
        with open(known_hosts, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    lines: List[str] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == f"# BEGIN {MANAGED_BLOCK}":
            inside, lines = True, []  # a block opened twice: only the last one counts
        elif line.strip() == f"# END {MANAGED_BLOCK}":
            if inside:
                return lines
        elif inside:
            lines.append(line)
    return []  # no complete block: nothing herd wrote


def known_host_keys(known_hosts: str, names: Sequence[str], port: int = 22) -> Dict[str, str]:
    """Keys herd's managed block of an OpenSSH known_hosts file records for any of ``names``."""
    import paramiko

    keys = paramiko.HostKeys()
    for line in managed_known_hosts_lines(known_hosts):
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        if entry is not None and entry.key is not None:
            for hostname in entry.hostnames:
                keys.add(hostname, entry.key.get_name(), entry.key)
    for name in names:
        entry = keys.lookup(name if port == 22 else f"[{name}]:{port}")
        if entry:
            return {keytype: entry[keytype].get_base64() for keytype in entry}
    return {}


def decode_answer(node: str, verb: str, stdout: bytes, stderr: bytes, status: int) -> Dict[str, Any]:
    """Turn the agent's raw output into its result, or raise RpcError."""
    text = stdout.decode("utf-8", "replace").strip()
    err = stderr.decode("utf-8", "replace")
    if not text:
        if status == 127 or "No such file" in err or "not found" in err:
            raise RpcError(node, verb, f"the herd-node agent is not installed at {AGENT_PATH}; "
                           f"{AGENT_REINSTALL_HINT}", err)
        raise RpcError(node, verb, f"the agent exited with status {status} and no answer", err)
    try:
        answer = json.loads(text.splitlines()[-1])
    except json.JSONDecodeError:
        raise RpcError(node, verb, f"the agent's answer is not JSON: {text[-300:]!r}", err) from None
    if not isinstance(answer, dict):
        raise RpcError(node, verb, "the agent's answer is not a JSON object", err)
    if answer.get("kind") == "version_mismatch" or answer.get("version") != VERSION:
        raise RpcError(node, verb, f"the agent there is version {answer.get('version')!r} but this master is "
                       f"{VERSION}: {AGENT_REINSTALL_HINT}")
    if not answer.get("ok"):
        raise RpcError(node, verb, str(answer.get("error", "unknown error")), answer.get("stderr", "") or err)
    result = answer.get("result")
    return result if isinstance(result, dict) else {"value": result}


class Rpc:
    def __init__(self, key_file: str, local_node: Optional[str] = None, connect_timeout: float = 10.0,
                 timeout: float = 120.0, max_workers: int = 8, agent_path: str = AGENT_PATH):
        self.key_file = key_file
        self.local_node = local_node
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_workers = max_workers
        self.agent_path = agent_path
        self._clients: Dict[str, Any] = {}
        self._guard = threading.Lock()

    def request(self, verb: str, args: Optional[Dict[str, Any]]) -> bytes:
        return json.dumps({"version": VERSION, "verb": verb, "args": args or {}}).encode()

    def call(self, endpoint: Endpoint, verb: str, args: Optional[Dict[str, Any]] = None,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        timeout = self.timeout if timeout is None else timeout
        payload = self.request(verb, args)
        if endpoint.name == self.local_node:
            return self._call_local(endpoint, verb, payload, timeout)
        return self._call_ssh(endpoint, verb, payload, timeout)

    def call_many(self, calls: List[Tuple[Endpoint, str, Optional[Dict[str, Any]]]],
                  timeout: Optional[float] = None) -> Dict[str, Union[Dict[str, Any], RpcError]]:
        """Run calls in parallel (bounded pool); each node's answer or its RpcError."""
        results: Dict[str, Union[Dict[str, Any], RpcError]] = {}
        if not calls:
            return results

        def one(call: Tuple[Endpoint, str, Optional[Dict[str, Any]]]) -> Tuple[str, Any]:
            endpoint, verb, args = call
            try:
                return endpoint.name, self.call(endpoint, verb, args, timeout)
            except RpcError as exc:
                return endpoint.name, exc

        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(calls))) as pool:
            for name, value in pool.map(one, calls):
                results[name] = value
        return results

    def _call_local(self, endpoint: Endpoint, verb: str, payload: bytes, timeout: float) -> Dict[str, Any]:
        try:
            proc = subprocess.run([self.agent_path], input=payload, capture_output=True, timeout=timeout,
                                  check=False)
        except FileNotFoundError:
            raise RpcError(endpoint.name, verb, f"the herd-node agent is not installed at {self.agent_path}; "
                           f"{AGENT_REINSTALL_HINT}") from None
        except subprocess.TimeoutExpired:
            raise RpcError(endpoint.name, verb, f"no answer within {timeout:g} s") from None
        return decode_answer(endpoint.name, verb, proc.stdout, proc.stderr, proc.returncode)

    def _client(self, endpoint: Endpoint) -> Any:
        import paramiko

        with self._guard:
            client = self._clients.get(endpoint.name)
            if client is not None and client.get_transport() is not None and client.get_transport().is_active():
                return client
        if not endpoint.host_keys:
            raise RpcError(endpoint.name, "connect", "no SSH host key is recorded for this node; "
                           "refusing to connect without one")
        client = paramiko.SSHClient()
        lookup_name = endpoint.address if endpoint.port == 22 else f"[{endpoint.address}]:{endpoint.port}"
        for keytype, b64 in endpoint.host_keys.items():
            # HostKeyEntry.from_line works with Debian 12's paramiko 2.12 as with 3.x
            entry = paramiko.hostkeys.HostKeyEntry.from_line(f"{lookup_name} {keytype} {b64}")
            if entry is None or entry.key is None:
                raise RpcError(endpoint.name, "connect", f"the recorded {keytype} host key cannot be read")
            client.get_host_keys().add(lookup_name, keytype, entry.key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(endpoint.address, port=endpoint.port, username="root", key_filename=self.key_file,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException:
            raise RpcError(endpoint.name, "connect", f"the SSH host key presented by {endpoint.address} does not "
                           "match the key recorded at node add; refusing to connect (possible impostor, "
                           "or the node was reinstalled: re-add it)") from None
        except paramiko.SSHException as exc:
            raise RpcError(endpoint.name, "connect", f"SSH to {endpoint.address}:{endpoint.port} failed: {exc}") from None
        except (OSError, socket.timeout) as exc:
            raise RpcError(endpoint.name, "connect", f"cannot reach {endpoint.address}:{endpoint.port}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
        with self._guard:
            self._clients[endpoint.name] = client
        return client

    def _call_ssh(self, endpoint: Endpoint, verb: str, payload: bytes, timeout: float) -> Dict[str, Any]:
        client = self._client(endpoint)
        deadline = time.monotonic() + timeout
        try:
            channel = client.get_transport().open_session(timeout=self.connect_timeout)
            channel.exec_command(self.agent_path)
            channel.sendall(payload)
            channel.shutdown_write()
            stdout, stderr = bytearray(), bytearray()
            channel.settimeout(0.5)
            while True:
                if time.monotonic() > deadline:
                    channel.close()
                    raise RpcError(endpoint.name, verb, f"no answer within {timeout:g} s")
                try:
                    chunk = channel.recv(65536)
                    if chunk:
                        stdout += chunk
                except socket.timeout:
                    chunk = b"?"
                while channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(65536)
                if not chunk and channel.exit_status_ready():
                    break
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
            status = channel.recv_exit_status()
        except RpcError:
            raise
        except Exception as exc:  # paramiko raises a zoo of types on a dropped link
            self._drop(endpoint.name)
            raise RpcError(endpoint.name, verb, f"SSH session failed: {exc}") from None
        return decode_answer(endpoint.name, verb, bytes(stdout), bytes(stderr), status)

    def _drop(self, name: str) -> None:
        with self._guard:
            client = self._clients.pop(name, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._guard:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
