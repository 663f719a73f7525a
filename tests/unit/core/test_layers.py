"""The engine's layers: no import cycles between modules, the allocator and the agent never
reach into the operations, and the operations import each other only at the top."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ENGINE = os.path.join(ROOT, "plugins", "module_utils", "herd")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ENGINE)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """Engine modules an ``import from`` names (relative imports only: the engine's own)."""
    if node.level == 0:
        return []
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    target = base + (node.module.split(".") if node.module else [])
    found = []
    for alias in node.names:
        candidate = ".".join(target + [alias.name])
        if os.path.exists(os.path.join(ENGINE, *candidate.split(".")) + ".py"):
            found.append(candidate)
        else:
            found.append(".".join(target))
    return [f for f in found if f]


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: modules it imports at the top}, {module: modules it imports inside functions})."""
    top: dict[str, set[str]] = {}
    inner: dict[str, set[str]] = {}
    for directory, _dirs, files in os.walk(ENGINE):
        for filename in files:
            if not filename.endswith(".py"):
                continue
            path = os.path.join(directory, filename)
            module = _module_name(path)
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            top[module], inner[module] = set(), set()
            for node in tree.body:
                if isinstance(node, ast.ImportFrom):
                    top[module].update(_resolve(module, node))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node not in tree.body:
                    inner[module].update(_resolve(module, node))
    return top, inner


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


# the recovery registry's loader imports the operations that register repairs, late, on purpose
LOADERS = {"ops.recovery": {"ops.instance", "ops.instance_disks", "ops.migrate", "ops.replace_disks"}}


def test_the_engine_has_no_import_cycles_even_through_function_level_imports():
    top, inner = import_graph()
    both = {m: top[m] | (inner[m] - LOADERS.get(m, set())) for m in top}
    assert cycles({m: {t for t in deps if t.startswith("ops.")} for m, deps in both.items()
                   if m.startswith("ops.")}) == []
    assert cycles(top) == []


def test_the_allocator_and_the_agent_never_import_the_operations():
    top, inner = import_graph()
    for module in top:
        if module.startswith(("allocator.", "agent.", "storage.", "hypervisor.")):
            assert not [m for m in top[module] | inner[module] if m.startswith("ops")], module


def test_operations_import_each_other_at_the_top_only():
    _top, inner = import_graph()
    assert {m: sorted(d for d in deps if d.startswith("ops.")) for m, deps in inner.items()
            if m.startswith("ops.") and any(d.startswith("ops.") for d in deps)} == {
        "ops.verify": ["ops.nodecalls"],
        "ops.recovery": ["ops.instance", "ops.instance_disks", "ops.migrate", "ops.replace_disks"]}
