"""herd-node: the node agent. One JSON request on stdin, one JSON answer on stdout;
with ``--serve``, one request per line and one answer per line until EOF (the
master's session per node, ``rpc.AgentSession``).

Request:  {"version": "0.1.0", "verb": "node_facts", "args": {...}}
Answer:   {"ok": true, "version": "0.1.0", "result": {...}}
      or  {"ok": false, "version": "0.1.0", "kind": "error"|"version_mismatch"|"unknown_verb", "error": "..."}

The agent refuses a request from a master of another version: the master
then tells the operator which role re-installs the agent.
"""

import importlib
import json
import os
import sys
import traceback
from typing import Any, Dict

from ..errors import HerdError
from ..version import VERSION
from .verbs import VERBS, AgentError

# Modules that register verbs. A module that is missing (an area not yet
# installed) is skipped rather than breaking every verb.
VERB_MODULES = ("facts", "files", "instance", "masterip", "migration", "storage")


def load_all() -> None:
    for name in VERB_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise


def handle(request: Any) -> Dict[str, Any]:
    if not isinstance(request, dict):
        return {"ok": False, "version": VERSION, "kind": "error", "error": "request is not a JSON object"}
    if request.get("version") != VERSION:
        return {"ok": False, "version": VERSION, "kind": "version_mismatch",
                "error": f"agent is {VERSION}, master is {request.get('version')!r}"}
    verb = request.get("verb")
    load_all()
    func = VERBS.get(verb)  # type: ignore[arg-type]
    if func is None:
        return {"ok": False, "version": VERSION, "kind": "unknown_verb",
                "error": f"unknown verb {verb!r}; this agent knows {sorted(VERBS)}"}
    args = request.get("args") or {}
    try:
        result = func(args)
    except (AgentError, HerdError) as exc:
        return {"ok": False, "version": VERSION, "kind": "error", "error": str(exc)}
    except Exception as exc:  # report, never crash without an answer
        return {"ok": False, "version": VERSION, "kind": "error",
                "error": f"{type(exc).__name__}: {exc}", "stderr": traceback.format_exc()[-4000:]}
    return {"ok": True, "version": VERSION, "result": result}


def answer_raw(raw: bytes) -> Dict[str, Any]:
    try:
        request = json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"ok": False, "version": VERSION, "kind": "error", "error": f"request is not JSON: {exc}"}
    return handle(request)


def serve() -> int:
    """Session mode (``--serve``): one request per line, one answer per line, until EOF.

    The answers go to a private copy of stdout; fd 1 is pointed at stderr so
    that nothing a verb or a library prints can break the line protocol.
    """
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    replies.write(json.dumps({"serve": VERSION}) + "\n")
    replies.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        replies.write(json.dumps(answer_raw(line)) + "\n")
        replies.flush()
    return 0


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    sys.stdout.write(json.dumps(answer_raw(sys.stdin.buffer.read())) + "\n")
    sys.stdout.flush()
    return 0
