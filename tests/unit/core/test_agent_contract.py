"""The master, the agent and the op tests' node stand-ins agree on the verbs."""

import ast
import os
import re

from plugins.module_utils.herd.agent import main
from plugins.module_utils.herd.agent.verbs import VERBS
from plugins.module_utils.herd.ops import instance as instance_op

from .agentnodes import SIMULATED_VERBS
from .test_ops_instance import spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MASTER_CODE = [os.path.join(ROOT, "plugins", "module_utils", "herd", "ops"), os.path.join(ROOT, "plugins", "modules")]
# functions whose string arguments name an agent verb: rpc.call, nodecalls.call and the helpers over it
CALLERS = {"call", "disk_call", "each_disk", "_later"}
VERB_NAME = re.compile(r"^[a-z]+(_[a-z]+)+$")


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _strings(nodes) -> set[str]:
    return {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and VERB_NAME.match(n.value)}


def verbs_the_master_calls() -> set[str]:
    found: set[str] = set()
    for directory in MASTER_CODE:
        for filename in sorted(os.listdir(directory)):
            if not filename.endswith(".py"):
                continue
            with open(os.path.join(directory, filename), encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _callee(node) in CALLERS:
                    found |= _strings(node.args)
                # call_many([(ctx.endpoint(...), "verb", args), ...])
                if isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[0], ast.Call) \
                        and _callee(node.elts[0]) == "endpoint":
                    found |= _strings(node.elts[1:2])
    return found


def test_every_verb_the_master_calls_is_served_by_the_agent():
    main.load_all()
    called = verbs_the_master_calls()
    assert {"node_facts", "disk_create", "migration_accept", "drbd_connect", "instance_disk_grown"} <= called
    assert sorted(called - set(VERBS)) == []


def test_every_verb_the_tests_simulate_is_one_the_agent_serves():
    main.load_all()
    assert sorted(set(SIMULATED_VERBS) - set(VERBS)) == []


def test_growing_a_running_instances_disk_tells_the_guest(cluster, nodes):
    instance_op.ensure(cluster, spec())
    result = instance_op.ensure(cluster, spec(disks=["2G"]))
    assert result["changed"] and not cluster.warnings
    assert nodes[0].hv_state("web1")["grown"] == {"0": 2048}
    assert list(nodes[0].disks.values()) == [2048]
