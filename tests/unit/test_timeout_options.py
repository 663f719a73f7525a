"""Every timeout option of the collection follows the one rule of
plugins/module_utils/timeout_option.py: named ``<what>_timeout``, whole seconds, ``type: int``,
built by ``timeout_arg``, documented with the same type and default."""

import re
from pathlib import Path

import pytest
import yaml

from plugins.module_utils.timeout_option import timeout_arg

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ENTRY = re.compile(r"\b(\w*timeout\w*)=(\w+)\(([^)]*)\)")


def documentation(path):
    text = path.read_text()
    return yaml.safe_load(re.search(r"DOCUMENTATION = r'''(.*?)'''", text, re.S).group(1))


def timeout_options(options, where):
    """(where, name, doc) of every documented option whose name mentions a timeout, suboptions too."""
    for name, doc in (options or {}).items():
        if "timeout" in name:
            yield where, name, doc
        yield from timeout_options(doc.get("suboptions"), f"{where}.{name}")


def documented():
    common = documentation(REPO / "plugins" / "doc_fragments" / "common.py")["options"]
    found = {"common": {name: doc for _w, name, doc in timeout_options(common, "common")}}
    for path in MODULES:
        options = documentation(path)["options"]
        found[path.stem] = {name: doc for _w, name, doc in timeout_options(options, path.stem)}
    return found


def test_every_documented_timeout_is_whole_seconds_named_for_what_it_bounds():
    problems = []
    for where, options in documented().items():
        for name, doc in options.items():
            description = " ".join(doc["description"]) if isinstance(doc["description"], list) \
                else doc["description"]
            default = doc.get("default")
            whole_seconds = isinstance(default, int) and not isinstance(default, bool)
            if not name.endswith("_timeout") or doc.get("type") != "int" or not whole_seconds \
                    or not description.startswith("Seconds"):
                problems.append(f"{where}: {name} ({doc.get('type')}, default {doc.get('default')!r})")
    assert problems == []


def test_every_timeout_in_an_argument_spec_is_built_by_timeout_arg_with_the_documented_default():
    docs = documented()
    sources = [(p.stem, p.read_text()) for p in MODULES]
    sources.append(("common", (REPO / "plugins" / "module_utils" / "ansible_herd.py").read_text()))
    seen = 0
    for where, text in sources:
        for name, builder, args in ENTRY.findall(text):
            assert builder == "timeout_arg", f"{where}: {name} is declared with {builder}(), not timeout_arg()"
            default = int(args.split(",")[0])
            doc = docs[where].get(name) or docs["instance"].get(name)   # INSTANCE_ARGS are documented there
            assert doc is not None, f"{where}: {name} is not documented"
            assert doc["default"] == default, f"{where}: {name} defaults to {default}, documented {doc['default']}"
            aliases = re.findall(r"'(\w+)'", args)
            assert sorted(doc.get("aliases") or []) == sorted(aliases), f"{where}: {name} aliases"
            seen += 1
    assert seen >= 9  # lock_timeout, rpc_timeout, shutdown_timeout (x2), sync (x2), follow, migration, probe


def test_role_timeouts_follow_the_same_rule():
    problems = []
    for spec in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec.read_text()).get("argument_specs") or {}).values():
            for name, option in (entry.get("options") or {}).items():
                if "timeout" in name and (not name.endswith("_timeout") or option.get("type") != "int"):
                    problems.append(f"{spec.parent.parent.name}: {name}")
    assert problems == []


def test_a_renamed_timeout_keeps_its_old_name_as_an_alias():
    assert timeout_arg(3600, aliases=["timeout"]) == {"type": "int", "default": 3600, "aliases": ["timeout"]}
    assert "migration_timeout" in documented()["instance_migrate"]
    assert documented()["instance_migrate"]["migration_timeout"]["aliases"] == ["timeout"]


@pytest.mark.parametrize("default", [86400.0, True, -1, "60"])
def test_a_default_that_is_not_whole_seconds_is_refused(default):
    with pytest.raises(ValueError, match="whole number of seconds"):
        timeout_arg(default)
