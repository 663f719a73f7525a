"""The one place that states herd's version (galaxy.yml must agree; a unit test checks)."""

VERSION = "0.1.0"
# The agent protocol changes only with the collection version: the master refuses
# an agent whose version differs and names the role that re-installs it.
AGENT_REINSTALL_HINT = "re-run the herd.cluster.node_base role on that node"
