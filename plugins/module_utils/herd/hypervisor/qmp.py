"""A small QMP client: JSON lines over QEMU's unix socket (standard library only).

    with QMP("/run/herd/kvm/web1.qmp") as qmp:
        qmp.execute("query-status")            # -> {"status": "running", ...}

The constructor connects, reads the greeting and negotiates capabilities.
Asynchronous events that arrive while waiting for an answer are kept in
``events``. Every read has a timeout; errors are ``QMPError`` with QEMU's
own description.
"""

import json
import socket
import time
from typing import Any, Dict, List, Optional

from ..errors import HerdError


class QMPError(HerdError):
    """QMP could not be reached or a command failed (message carries QEMU's text)."""

    def __init__(self, message: str, error_class: str = ""):
        super().__init__(message)
        self.error_class = error_class


class QMP:
    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self.events: List[Dict[str, Any]] = []
        self._buf = b""
        self._id = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            greeting = self._read_message()
            if "QMP" not in greeting:
                raise QMPError(f"{path}: not a QMP greeting: {greeting!r}")
            self.greeting = greeting["QMP"]
            self.execute("qmp_capabilities")
        except OSError as exc:
            self.sock.close()
            raise QMPError(f"cannot talk QMP on {path}: {exc.strerror or exc}") from None
        except QMPError:
            self.sock.close()
            raise

    def __enter__(self) -> "QMP":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_message(self, deadline: Optional[float] = None) -> Dict[str, Any]:
        deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f"{self.path}: no answer from QEMU within {self.timeout:g} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise QMPError(f"{self.path}: no answer from QEMU within {self.timeout:g} s") from None
            if not chunk:
                raise QMPError(f"{self.path}: QEMU closed the QMP connection")
            self._buf += chunk
        line, _sep, self._buf = self._buf.partition(b"\n")
        try:
            msg = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise QMPError(f"{self.path}: bad QMP message {line[:200]!r}: {exc}") from None
        if not isinstance(msg, dict):
            raise QMPError(f"{self.path}: bad QMP message {line[:200]!r}")
        return msg

    def execute(self, command: str, arguments: Optional[Dict[str, Any]] = None,
                timeout: Optional[float] = None) -> Any:
        """Run one command; return its ``return`` value or raise QMPError with QEMU's ``desc``."""
        self._id += 1
        request: Dict[str, Any] = {"execute": command, "id": self._id}
        if arguments:
            request["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
        except OSError as exc:
            raise QMPError(f"{self.path}: cannot send {command}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            msg = self._read_message(deadline)
            if "event" in msg:
                self.events.append(msg)
                continue
            if msg.get("id") != self._id:
                continue
            if "error" in msg:
                err = msg["error"]
                raise QMPError(f"QEMU refused {command}: {err.get('desc', err)}", err.get("class", ""))
            return msg.get("return")
