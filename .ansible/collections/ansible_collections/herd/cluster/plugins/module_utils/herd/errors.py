"""Exceptions of the herd engine. Modules turn them into fail_json messages."""


class HerdError(Exception):
    """Base class: the message is meant for the operator as it stands."""


class ValidationError(HerdError):
    """Bad input, found before anything was touched."""


class ConfigError(HerdError):
    """The cluster config is missing, corrupt, or inconsistent."""


class LockError(HerdError):
    """A lock could not be taken in time; the message names the holder."""


class RpcError(HerdError):
    """A node RPC failed; the message names the node, the verb and stderr."""

    def __init__(self, node: str, verb: str, message: str, stderr: str = ""):
        self.node = node
        self.verb = verb
        self.stderr = stderr
        detail = f"{node}: {verb} failed: {message}"
        if stderr.strip():
            detail += f" (stderr: {stderr.strip()[-2000:]})"
        super().__init__(detail)


class PrerequisiteError(HerdError):
    """The operation cannot run in the cluster's current state."""
