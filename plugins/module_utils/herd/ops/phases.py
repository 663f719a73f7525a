"""The one shape of a state-changing operation (Ganeti's LogicalUnit), and its locks.

    check arguments      every value validated before anything is read or touched
    declare locks        by level: instances, node allocation, nodes (shared or exclusive)
    acquire              in one fixed order, the same for every operation
    check prerequisites  against the config loaded under those locks
    execute              steps in a job, each registering its undo
    commit               under the config lock, re-checking that every node and instance the
                         operation refers to still exists, then save and replicate

Lock order. herd's ``cluster`` lock guards the config's read-modify-write and
is held only for that moment, so it is taken last, at each commit; the levels
an operation holds for its whole run are taken before it in this order:
instances (sorted), the node-allocation lock, nodes (sorted). Any two
operations that take the same locks take them in the same order, so they
wait for each other and never deadlock. The node-allocation lock is what
placement and node removal share: an instance create holds it from placement
to commit, a node removal holds it while it removes, so a node cannot go away
between an instance being placed on it and that instance being committed.

Cluster init (``cluster.present`` on a node without a config) is the one state-changing
operation outside this skeleton: like Ganeti's ``bootstrap.InitCluster`` it runs before any
cluster, config or lock level exists, so there is nothing to declare or re-check yet.
"""

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, Iterable, Iterator, List, Optional

from ..config import Config
from ..errors import PrerequisiteError
from ..jobs import Job, Locks
from .common import Context

LEVELS = ("instance", "node_alloc", "node")
ALLOCATION_LOCK = "allocation"
# seconds for which the candidates' answer that this node is the master stands within one operation
MASTER_CONFIRMED_FOR = 10.0


@dataclass
class LockDecl:
    """What an operation locks, by level."""

    instances: List[str] = field(default_factory=list)
    node_alloc: bool = False
    nodes: List[str] = field(default_factory=list)
    shared_nodes: bool = False  # use the nodes (create, migrate) rather than change them (remove)
    # the nodes of the declared instances too, read from the config once their locks are held (an
    # instance's nodes change only under its lock), as Ganeti's _LockInstancesNodes
    instance_nodes: bool = False
    instance_timeout: Optional[float] = None  # None: the locks' own timeout; 0: fail at once if held


class Held:
    """The locks ``acquire`` took, by level; a level can be released before the others
    (Ganeti's ReleaseLocks: the node-allocation lock once the placement is committed)."""

    def __init__(self) -> None:
        self.levels: Dict[str, ExitStack] = {level: ExitStack() for level in LEVELS}

    def release(self, level: str) -> None:
        self.levels[level].close()


@contextmanager
def acquire(ctx: Context, locks: Locks, decl: LockDecl, allocation_timeout: Optional[float] = None
            ) -> Iterator[Held]:
    """Take ``decl``'s locks in the fixed order; release them all on exit, in reverse order."""
    held = Held()
    with ExitStack() as stack:
        for level in LEVELS:
            stack.callback(held.levels[level].close)
        for name in sorted(set(decl.instances)):
            held.levels["instance"].enter_context(
                locks.instance(name) if decl.instance_timeout is None
                else locks.instance(name, timeout=decl.instance_timeout))
        nodes = set(decl.nodes)
        if decl.instance_nodes and decl.instances:
            config = ctx.store.load()
            for name in decl.instances:
                if name in config.instances:
                    nodes.update(config.instances[name].nodes())
        if decl.node_alloc:
            held.levels["node_alloc"].enter_context(locks.lock(ALLOCATION_LOCK, timeout=allocation_timeout))
        for node in sorted(nodes):
            held.levels["node"].enter_context(locks.node(node, shared=decl.shared_nodes))
        yield held


def allocation_lock(ctx: Context, locks: Locks) -> Any:
    """The node-allocation lock alone (placement holds it for minutes while disks are made)."""
    return locks.lock(ALLOCATION_LOCK, timeout=max(ctx.lock_timeout, 300))


def node_locks(locks: Locks, nodes: Iterable[str], shared: bool) -> ExitStack:
    """The locks of ``nodes``, sorted, for an operation that learns its nodes late (placement)."""
    stack = ExitStack()
    try:
        for node in sorted({n for n in nodes if n}):
            stack.enter_context(locks.node(node, shared=shared))
    except BaseException:
        stack.close()
        raise
    return stack


def check_still_there(config: Config, nodes: Iterable[str] = (), instances: Iterable[str] = (),
                      what: str = "this operation") -> None:
    """Refuse a commit that would refer to a node or instance removed meanwhile."""
    gone_nodes = sorted({n for n in nodes if n and n not in config.nodes})
    if gone_nodes:
        raise PrerequisiteError(f"{what}: node(s) {', '.join(gone_nodes)} were removed from the cluster "
                                "while it ran; nothing was committed")
    gone = sorted({i for i in instances if i and i not in config.instances})
    if gone:
        raise PrerequisiteError(f"{what}: instance(s) {', '.join(gone)} were removed while it ran; "
                                "nothing was committed")


def commit(ctx: Context, locks: Locks, change: Callable[[Config], None], nodes: Iterable[str] = (),
           instances: Iterable[str] = (), what: str = "this operation") -> Config:
    """The commit phase: under the config lock, load the newest config, re-check what the
    operation refers to, apply ``change`` and save (serial+1, replicated)."""
    with locks.cluster():
        fresh = ctx.store.load()
        check_still_there(fresh, nodes, instances, what)
        change(fresh)
        ctx.commit(fresh)
        return fresh


class Operation:
    """A state-changing operation in phases. Subclasses set ``opcode`` and fill in the phases;
    ``run`` drives them in order and is the only entry point.

    While the phases run, ``self.held`` are the declared locks (a level may be released early)
    and ``self.hold`` takes the nodes an operation learns only in its prerequisites (an
    allocator's choice), after the declared locks and kept until the end."""

    held: Held

    opcode = ""

    def __init__(self, ctx: Context, spec: Dict[str, Any]):
        self.ctx = ctx
        self.spec = spec
        self.locks = ctx.locks(self.opcode)
        self.held = Held()  # the declared locks while ``run`` holds them (empty until then)
        self._late = ExitStack()  # nodes locked late (``hold``); replaced by ``run``'s
        self._master_confirmed_at: Optional[float] = None  # time.monotonic() of the candidates' last answer

    def check_arguments(self) -> None:
        """Validate ``spec``; nothing is read from the cluster yet."""

    def declare_locks(self, config: Config) -> LockDecl:
        return LockDecl()

    def check_prerequisites(self, config: Config) -> Dict[str, Any]:
        """Check against the locked config; return the result (changed, diff, msg) it would give."""
        raise NotImplementedError

    def has_work(self, result: Dict[str, Any]) -> bool:
        """Whether ``execute`` runs (outside check mode): by default when something changes; an
        operation that also waits for something (a resync) when nothing changes says so here."""
        return bool(result.get("changed"))

    def execute(self, job: Job, config: Config, result: Dict[str, Any]) -> None:
        """Make the change, registering undo steps on ``job``; commit through ``commit``."""
        raise NotImplementedError

    def open_job(self) -> ContextManager[Any]:
        """The journal entry ``execute`` runs in: ``opcode`` with the spec. An operation that
        records other parameters returns its own ``ctx.job``; one whose steps open their own jobs
        (a composite, a cleanup) returns ``contextlib.nullcontext()``."""
        return self.ctx.job(self.opcode, self.spec)

    def hold(self, nodes: Iterable[str], shared: bool = True) -> None:
        """Lock ``nodes`` now, until the operation ends: only for nodes learnt late, by an
        operation that declared no node locks (so the sorted order of the node level holds)."""
        self._late.enter_context(node_locks(self.locks, nodes, shared))

    def run_within(self, parent: "Operation") -> Dict[str, Any]:
        """The phases under the locks ``parent`` already holds: an operation that is one step of
        another (the rest of a modify after a disk-template conversion)."""
        self.check_arguments()
        self.locks, self.held, self._late = parent.locks, parent.held, parent._late
        self._master_confirmed_at = parent._master_confirmed_at
        return self._check_and_execute()

    def run(self) -> Dict[str, Any]:
        self.check_arguments()
        config = self.ctx.load_master_config()
        self._master_confirmed_at = time.monotonic()
        decl = self.declare_locks(config)
        with acquire(self.ctx, self.locks, decl, allocation_timeout=max(self.ctx.lock_timeout, 300)) as held, \
                ExitStack() as late:
            self.held, self._late = held, late
            return self._check_and_execute()

    def _check_and_execute(self) -> Dict[str, Any]:
        """Prerequisites against the config loaded under the locks, then (unless check mode or
        nothing to do) execute in the operation's job."""
        # The config again, under the locks. The candidates (is this node still the master?) are
        # asked again only after a wait for the locks: the answer of a moment ago stands, and
        # what keeps a replaced master from overwriting the config is their refusal of an older
        # (epoch, serial) at the commit; the question gives the clear error before anything is done.
        confirmed = self._master_confirmed_at
        ask = confirmed is None or time.monotonic() - confirmed >= MASTER_CONFIRMED_FOR
        config = self.ctx.load_master_config(ask_candidates=ask)
        if ask:
            self._master_confirmed_at = time.monotonic()
        result = self.check_prerequisites(config)
        if self.ctx.check_mode or not self.has_work(result):
            return result
        with self.open_job() as job:
            self.execute(job, config, result)
        return result
