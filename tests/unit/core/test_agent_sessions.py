"""The master keeps one agent process per node for all RPCs of an operation.

The agent here is the real herd-node program (plugins/module_utils/herd/agent)
started by the master's own Rpc class as a local session; a wrapper adds the
verbs that misbehave on purpose and records each process it starts.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from plugins.module_utils.herd.errors import RpcError
from plugins.module_utils.herd.rpc import Endpoint, Rpc
from plugins.module_utils.herd.version import VERSION

ROOT = Path(__file__).resolve().parents[3]

AGENT = """#!{python}
import os, sys, time
sys.path.insert(0, {module_utils!r})
with open({pids!r}, "a") as handle:
    handle.write(f"{{os.getpid()}}\\n")
from herd.agent.verbs import verb

@verb("test_noisy")
def noisy(args):
    print("a verb that prints to stdout")
    os.write(1, b"and one that writes to fd 1\\n")
    return {{"said": "hello"}}

@verb("test_slow")
def slow(args):
    time.sleep(args["seconds"])
    return {{}}

from herd.agent.main import main
sys.exit(main())
"""


@pytest.fixture
def agent(tmp_path, monkeypatch):
    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path / "state"))
    pids = tmp_path / "pids"
    script = tmp_path / "herd-node"
    script.write_text(AGENT.format(python=sys.executable, module_utils=str(ROOT / "plugins" / "module_utils"),
                                   pids=str(pids)))
    script.chmod(0o755)
    return script, pids


def started(pids: Path) -> list:
    return pids.read_text().split() if pids.exists() else []


def gone(pid: str, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        # a zombie child of this test process still answers kill(0): reap it if it is ours
        try:
            os.waitpid(int(pid), os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


def local(script: Path, **kwargs) -> Rpc:
    return Rpc(key_file="/nonexistent", local_node="node1", agent_path=str(script), **kwargs)


NODE1 = Endpoint(name="node1", address="127.0.0.1")


def test_one_agent_process_answers_every_call_of_an_operation(agent):
    script, pids = agent
    rpc = local(script)
    answers = [rpc.call(NODE1, "cluster_membership") for _call in range(5)]
    assert answers[0] == {"ssconf": None, "config_serial": None, "config_epoch": None}
    assert len(started(pids)) == 1
    rpc.close()
    assert gone(started(pids)[0])


def test_parallel_calls_to_one_node_get_a_session_each(agent):
    script, pids = agent
    rpc = local(script)
    assert rpc.call(NODE1, "test_slow", {"seconds": 0}) == {}
    errors = []

    def call():
        try:
            rpc.call(NODE1, "test_slow", {"seconds": 0.5})
        except RpcError as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=call) for _thread in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(started(pids)) == 3  # the first session was reused by one of the three
    rpc.close()
    assert all(gone(pid) for pid in started(pids))


def test_what_a_verb_prints_does_not_break_the_answers(agent):
    script, pids = agent
    rpc = local(script)
    assert rpc.call(NODE1, "test_noisy") == {"said": "hello"}
    assert rpc.call(NODE1, "cluster_membership")["config_serial"] is None
    assert len(started(pids)) == 1
    rpc.close()


def test_a_timed_out_call_ends_its_session_and_the_next_call_starts_a_fresh_one(agent):
    script, pids = agent
    rpc = local(script)
    with pytest.raises(RpcError, match=r"node1: test_slow failed: no answer within 0.5 s"):
        rpc.call(NODE1, "test_slow", {"seconds": 3}, timeout=0.5)
    assert rpc.call(NODE1, "cluster_membership")["config_serial"] is None
    first, second = started(pids)
    assert first != second
    rpc.close()
    assert gone(first) and gone(second)


def test_an_agent_that_died_between_calls_is_replaced(agent):
    script, pids = agent
    rpc = local(script)
    rpc.call(NODE1, "cluster_membership")
    os.kill(int(started(pids)[0]), 9)
    gone(started(pids)[0])
    assert rpc.call(NODE1, "cluster_membership")["config_serial"] is None
    assert len(started(pids)) == 2
    rpc.close()


def test_an_agent_older_than_sessions_is_named_with_the_role_that_reinstalls_it(tmp_path):
    old = tmp_path / "herd-node"
    # the one-shot agent of earlier versions: read the whole request, answer once
    old.write_text(f"#!{sys.executable}\nimport sys, json\nsys.stdin.read()\nprint(json.dumps({{'ok': True}}))\n")
    old.chmod(0o755)
    rpc = local(old, connect_timeout=1.0)
    start = time.monotonic()
    with pytest.raises(RpcError, match=r"node1: connect failed: the agent did not start in session mode.*node_base"):
        rpc.call(NODE1, "cluster_membership")
    assert time.monotonic() - start < 5
    rpc.close()


def test_a_missing_agent_is_reported_as_not_installed(tmp_path):
    rpc = local(tmp_path / "nothing-here")
    with pytest.raises(RpcError, match="not installed"):
        rpc.call(NODE1, "cluster_membership")


def test_the_agent_still_answers_one_request_without_serve(agent, tmp_path):
    script, _pids = agent
    proc = subprocess.run([str(script)], input=json.dumps({"version": VERSION, "verb": "test_noisy"}).encode(),
                          capture_output=True, check=True)
    assert json.loads(proc.stdout.splitlines()[-1])["result"] == {"said": "hello"}
