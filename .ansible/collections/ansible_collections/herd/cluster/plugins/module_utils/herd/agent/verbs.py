"""Registry of the herd-node agent's verbs.

A verb is a function taking the request's ``args`` dict and returning a
JSON-serialisable dict. Verbs are small and idempotent. Each area registers its
verbs in its own module (facts.py, files.py, instance.py, storage.py, ...) and
``main.load_all`` imports them.
"""

from typing import Any, Callable, Dict

VerbFunc = Callable[[Dict[str, Any]], Dict[str, Any]]
VERBS: Dict[str, VerbFunc] = {}


def verb(name: str) -> Callable[[VerbFunc], VerbFunc]:
    def register(func: VerbFunc) -> VerbFunc:
        if name in VERBS:
            raise RuntimeError(f"verb {name} registered twice")
        VERBS[name] = func
        return func
    return register


class AgentError(Exception):
    """A verb failed in a way the master should report verbatim."""
