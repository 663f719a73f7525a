"""RPC from the master to the herd-node agents over SSH (paramiko).

``herd-node --serve`` reads JSON requests on stdin and writes one JSON answer
per request on stdout, a line each; an operation keeps one such session per
node for all its requests (``AgentSession``). The remote command is the fixed
agent path; every argument travels in the JSON, so nothing is ever
interpolated into a shell.

Host keys: a node's keys are recorded in the cluster config at node add, read
only from herd's own managed block of the master's known_hosts, which the
node_base role fills from the keys the nodes present to Ansible. Any other line
of that file (an operator's ``ssh`` accepting a key on first use, another tool)
is never taken. Afterwards only the recorded keys are accepted (RejectPolicy);
there is no trust-on-first-use anywhere.
"""

import json
import os
import selectors
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple, Union, cast

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


class AgentSession:
    """One ``herd-node --serve`` process answering requests one at a time.

    An operation makes a dozen or more calls to the same few nodes; a session
    saves each of them the SSH session set-up and the agent's Python start-up
    and imports. Requests and answers are one JSON document per line (JSON
    escapes newlines inside strings); the agent greets with a line naming its
    version before the first request.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self._out = bytearray()
        self._err = bytearray()

    # transport-specific: one wait for output, EOF, liveness, teardown
    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive(self, wait: float) -> bool:
        """Append what arrives within ``wait`` seconds to the buffers; False at end of output."""
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def exit_status(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def read_line(self, verb: str, deadline: float) -> Optional[bytes]:
        """The next line the agent writes; None when the deadline passes first."""
        while b"\n" not in self._out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._receive(min(remaining, 0.5)):
                status = self.exit_status()
                # no answer line: decode_answer turns the exit status and stderr into the reason
                decode_answer(self.node, verb, bytes(self._out), bytes(self._err), status)
                raise RpcError(self.node, verb, "the agent closed the session without an answer",
                               bytes(self._err).decode("utf-8", "replace"))
        line, _sep, rest = bytes(self._out).partition(b"\n")
        del self._out[:]
        self._out += rest
        return line

    def greet(self, deadline: float) -> None:
        line = self.read_line("connect", deadline)
        try:
            greeting = json.loads(line) if line is not None else None
        except json.JSONDecodeError:
            greeting = None
        if not isinstance(greeting, dict) or "serve" not in greeting:
            raise RpcError(self.node, "connect", "the agent did not start in session mode; it predates this "
                           f"collection: {AGENT_REINSTALL_HINT}", bytes(self._err).decode("utf-8", "replace"))

    def exchange(self, verb: str, payload: bytes, deadline: float, timeout: float) -> Tuple[bytes, bytes]:
        """Send one request; its answer line and what the agent wrote on stderr meanwhile."""
        del self._err[:]
        self._send(payload + b"\n")
        line = self.read_line(verb, deadline)
        if line is None:
            raise RpcError(self.node, verb, f"no answer within {timeout:g} s")
        return line, bytes(self._err[-4000:])


class SshAgentSession(AgentSession):
    def __init__(self, node: str, transport: Any, agent_path: str, open_timeout: float) -> None:
        super().__init__(node)
        self.channel = transport.open_session(timeout=open_timeout)
        self.channel.exec_command(f"{agent_path} --serve")

    def _send(self, data: bytes) -> None:
        self.channel.sendall(data)

    def _receive(self, wait: float) -> bool:
        self.channel.settimeout(wait)
        while self.channel.recv_stderr_ready():
            self._err += self.channel.recv_stderr(65536)
        try:
            chunk = self.channel.recv(65536)
        except socket.timeout:
            return True
        while self.channel.recv_stderr_ready():
            self._err += self.channel.recv_stderr(65536)
        self._out += chunk
        return bool(chunk)

    def alive(self) -> bool:
        return not self.channel.closed and not self.channel.exit_status_ready()

    def exit_status(self) -> int:
        self.channel.status_event.wait(2.0)  # sshd sends the status right after EOF
        return self.channel.recv_exit_status() if self.channel.exit_status_ready() else -1

    def close(self) -> None:
        self.channel.close()


class LocalAgentSession(AgentSession):
    def __init__(self, node: str, agent_path: str) -> None:
        super().__init__(node)
        self.proc = subprocess.Popen([agent_path, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        pipes = (self.proc.stdin, self.proc.stdout, self.proc.stderr)
        if None in pipes:  # never: all three are asked for as pipes (this tells the type checker)
            raise RpcError(node, "connect", "the local agent's pipes could not be opened")
        self.stdin, self.stdout, self.stderr = cast(Tuple[IO[bytes], IO[bytes], IO[bytes]], pipes)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ, self._out)
        self.selector.register(self.stderr, selectors.EVENT_READ, self._err)
        self._eof = False

    def _send(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def _receive(self, wait: float) -> bool:
        for key, _events in self.selector.select(wait):
            chunk = os.read(key.fd, 65536)
            if key.fileobj is self.stdout:
                self._out += chunk
                self._eof = not chunk
            else:
                self._err += chunk
                if not chunk:
                    self.selector.unregister(key.fileobj)
        return not self._eof

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_status(self) -> int:
        return self.proc.wait()

    def close(self) -> None:
        self.selector.close()
        for pipe in (self.stdin, self.stdout, self.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            # EOF on stdin ends the agent once its current verb is done
            self.proc.wait(timeout=0)
        except subprocess.TimeoutExpired:
            pass


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
        self._idle: Dict[str, List[AgentSession]] = {}
        self._guard = threading.Lock()

    def request(self, verb: str, args: Optional[Dict[str, Any]]) -> bytes:
        return json.dumps({"version": VERSION, "verb": verb, "args": args or {}}).encode()

    def call(self, endpoint: Endpoint, verb: str, args: Optional[Dict[str, Any]] = None,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        timeout = self.timeout if timeout is None else timeout
        payload = self.request(verb, args)
        deadline = time.monotonic() + timeout
        session = self._session(endpoint, verb)
        try:
            line, stderr = session.exchange(verb, payload, deadline, timeout)
        except RpcError:
            session.close()
            raise
        except Exception as exc:  # paramiko raises a zoo of types on a dropped link
            session.close()
            if endpoint.name != self.local_node:
                self._drop(endpoint.name)
            raise RpcError(endpoint.name, verb, f"SSH session failed: {exc}") from None
        with self._guard:
            self._idle.setdefault(endpoint.name, []).append(session)
        return decode_answer(endpoint.name, verb, line, stderr, 0)

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

    def _session(self, endpoint: Endpoint, verb: str) -> AgentSession:
        """An idle session to the node's agent, or a new one; a session found dead is discarded."""
        while True:
            with self._guard:
                idle = self._idle.get(endpoint.name) or []
                session = idle.pop() if idle else None
            if session is None:
                break
            if session.alive():
                return session
            session.close()
        deadline = time.monotonic() + self.connect_timeout
        if endpoint.name == self.local_node:
            try:
                session = LocalAgentSession(endpoint.name, self.agent_path)
            except (FileNotFoundError, PermissionError):
                raise RpcError(endpoint.name, verb, f"the herd-node agent is not installed at {self.agent_path}; "
                               f"{AGENT_REINSTALL_HINT}") from None
        else:
            client = self._client(endpoint)
            try:
                session = SshAgentSession(endpoint.name, client.get_transport(), self.agent_path,
                                          self.connect_timeout)
            except Exception as exc:
                self._drop(endpoint.name)
                raise RpcError(endpoint.name, verb, f"SSH session failed: {exc}") from None
        try:
            session.greet(deadline)
        except RpcError:
            session.close()
            raise
        except Exception as exc:
            session.close()
            raise RpcError(endpoint.name, verb, f"SSH session failed: {exc}") from None
        return session

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

    def _drop(self, name: str) -> None:
        with self._guard:
            client = self._clients.pop(name, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._guard:
            sessions = [session for idle in self._idle.values() for session in idle]
            clients, self._clients, self._idle = list(self._clients.values()), {}, {}
        for session in sessions:
            session.close()
        for client in clients:
            client.close()
