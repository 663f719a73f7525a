"""The collection as a whole: metadata agrees, it builds and installs, every module is documented."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def modules():
    return sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def test_galaxy_version_matches_the_engine_and_agent_version():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    source = (REPO / "plugins" / "module_utils" / "herd" / "version.py").read_text()
    assert re.search(r'VERSION = "([^"]+)"', source).group(1) == galaxy["version"]
    assert (galaxy["namespace"], galaxy["name"]) == ("herd", "cluster")


def module_documentation(name):
    text = (REPO / "plugins" / "modules" / f"{name}.py").read_text()
    return yaml.safe_load(re.search(r"\nDOCUMENTATION = r'''(.*?)'''", text, re.S).group(1))


def test_master_action_group_is_exactly_the_modules_with_the_common_options():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    common = [name for name in modules()
              if "herd.cluster.common" in module_documentation(name).get("extends_documentation_fragment", [])]
    assert sorted(runtime["action_groups"]["master"]) == common


def test_bootstrap_action_group_is_exactly_the_modules_the_node_roles_run():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    used = set()
    for path in (REPO / "roles").glob("node*/tasks/*.yml"):
        used.update(re.findall(r"herd\.cluster\.([a-z_]+):", path.read_text()))
    assert sorted(runtime["action_groups"]["bootstrap"]) == sorted(used)


def test_every_module_has_documentation_examples_and_return():
    for name in modules():
        text = (REPO / "plugins" / "modules" / f"{name}.py").read_text()
        for block in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            assert f"\n{block} = r'''" in text, f"{name} lacks {block}"


def test_every_role_has_argument_specs():
    for role in (REPO / "roles").iterdir():
        assert (role / "meta" / "argument_specs.yml").exists(), f"role {role.name} lacks meta/argument_specs.yml"


def test_collection_builds_installs_and_documents_its_modules(tmp_path):
    subprocess.run([BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path, REPO], check=True,
                   capture_output=True)
    artifact = next(tmp_path.glob("herd-cluster-*.tar.gz"))
    target = tmp_path / "collections"
    subprocess.run([BIN / "ansible-galaxy", "collection", "install", "--force", "-p", target, artifact], check=True,
                   capture_output=True)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(target))
    listed = subprocess.run([BIN / "ansible-doc", "-l", "herd.cluster"], check=True, capture_output=True, text=True,
                            env=env).stdout
    for name in modules():
        assert f"herd.cluster.{name}" in listed
    installed = target / "ansible_collections" / "herd" / "cluster"
    assert (installed / "plugins" / "module_utils" / "herd" / "agent" / "main.py").exists()
    assert not (installed / "inventories" / "vcluster" / "hosts.yml").exists()


def test_sanity_runs_on_the_oldest_ansible_core_the_collection_declares():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    oldest = re.fullmatch(r">=(\d+\.\d+)\.\d+", runtime["requires_ansible"]).group(1)
    versions = re.search(r"for core in ([0-9. ]+); do", (REPO / "scripts" / "test.sh").read_text()).group(1).split()
    assert any(v.startswith(oldest + ".") for v in versions), (oldest, versions)
    for version in versions:
        minor = ".".join(version.split(".")[:2])
        assert (REPO / "tests" / "sanity" / f"ignore-{minor}.txt").exists(), f"no sanity ignore file for {minor}"


def test_the_example_inventory_playbook_resolves_the_collection_from_a_checkout():
    tracked = subprocess.run(["git", "ls-files", ".build/collections/ansible_collections/herd/cluster"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked == [".build/collections/ansible_collections/herd/cluster"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    proc = subprocess.run([BIN / "ansible-playbook", "-i", "inventories/example", "playbooks/site.yml",
                           "--list-tasks"], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "herd.cluster.node : " in proc.stdout
