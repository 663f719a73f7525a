"""roles/instances passes every option of the instance module, and only those."""

import ast
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def instance_module_options():
    with open(os.path.join(ROOT, "plugins", "module_utils", "ansible_herd.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INSTANCE_ARGS":
            return {kw.arg for kw in node.value.keywords}
    raise AssertionError("plugins/module_utils/ansible_herd.py defines no INSTANCE_ARGS")


def test_the_instances_role_hands_the_declared_list_to_the_bulk_module_whole():
    with open(os.path.join(ROOT, "roles", "instances", "tasks", "main.yml"), encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    converge = next(t for t in tasks if t.get("name") == "Converge declared instances")
    assert converge["herd.cluster.instances"]["instances"] == "{{ instances_declared }}"
    assert converge["herd.cluster.instances"]["default_state"] == "running"


def test_the_roles_argument_spec_names_every_instance_option():
    with open(os.path.join(ROOT, "roles", "instances", "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        text = " ".join(yaml.safe_load(handle)["argument_specs"]["main"]["options"]["instances_declared"]
                        ["description"])
    missing = sorted(o for o in instance_module_options() if o not in text)
    assert missing == []
