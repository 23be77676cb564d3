"""The service trees that both the commands and twistd run (Part 16).

Each server is a :class:`ServerTree`: a MultiService holding the service that
owns the poem (or the transforms, or the upstream) and a
:class:`~poetrynow.servers.common.startup.ListeningService` that listens with the
factory. ``fastpoetry`` and ``twistd fastpoetry`` build the very same tree with
:func:`fast_poetry`; only who starts it, and where its log goes, differ. Every
builder takes the reactor to run on, so tests can hand it a MemoryReactor, and
``plain=True`` picks the plain edition (the fast one is the default where its
start-up check passes: :mod:`poetrynow.servers.common.fastpath`). The transform server
has one edition, the plain one.
"""

from __future__ import annotations

from twisted.application import service

from poetrynow.address import Address
from poetrynow.clients.errors import DEFAULT_MAX_BYTES
from poetrynow.faults import Faults
from poetrynow.netstring import DEFAULT_MAX_LENGTH
from poetrynow.servers.common.listen import Where
from poetrynow.servers.common.startup import ListeningService
from poetrynow.servers.fast.plain import PoetryFactory, PoetryService
from poetrynow.servers.proxy import PoetryProxyFactory, ProxyService
from poetrynow.servers.slow.plain import NO_FAULTS, SlowPoetryFactory
from poetrynow.servers.transform.costs import NO_COST, Cost
from poetrynow.servers.transform.server import TransformFactory, TransformService
from poetrynow.servers.transform.workers import placement


class ServerTree(service.MultiService):
    """One server: the service that holds what it serves, then its listener.

    The order matters: a MultiService starts its children in order, in
    privilegedStartService (where twistd binds) as in startService, so the poem
    is read before anything listens and a missing poem never opens a port.
    """

    def __init__(self, name: str, held, factory, where: Where, what: str, reactor=None):
        service.MultiService.__init__(self)
        self.setName(name)
        self.held = held
        self.listener = ListeningService(factory, where, what, reactor)
        held.setServiceParent(self)
        self.listener.setServiceParent(self)


HERE = Where()  # port 0 on localhost


def fast_poetry(
    poem: str, where: Where = HERE, log_clients: bool = True, reactor=None, plain: bool = False
) -> ServerTree:
    held = PoetryService(poem)
    factory = PoetryFactory(held, log_clients=log_clients, plain=plain)
    return ServerTree("fastpoetry", held, factory, where, f"Serving {poem}", reactor)


def slow_poetry(
    poem: str,
    num_bytes: int = 10,
    delay: float = 0.1,
    where: Where = HERE,
    log_clients: bool = True,
    reactor=None,
    faults: Faults = NO_FAULTS,
    rate: float | None = None,
    plain: bool = False,
) -> ServerTree:
    held = PoetryService(poem)
    factory = SlowPoetryFactory(
        held, num_bytes, delay, clock=reactor, log_clients=log_clients, faults=faults, rate=rate, plain=plain
    )
    return ServerTree("slowpoetry", held, factory, where, f"Serving {poem}", reactor)


def transformed_poetry(
    where: Where = HERE,
    max_length: int = DEFAULT_MAX_LENGTH,
    timeout: float | None = 60.0,
    log_clients: bool = True,
    reactor=None,
    plain: bool = True,
    cost: Cost = NO_COST,
    cost_in: str = "loop",
    workers: int | None = None,
    work_log: str | None = None,
    queue: int | None = None,
) -> ServerTree:
    """The transform server; ``plain`` is taken as every builder takes it: it has one edition.

    Each transform costs ``cost``, spent where ``cost_in`` says (loop, thread, process)
    by up to ``workers`` threads or processes, which hold at most ``queue`` transforms
    (at work or waiting); ``work_log``: a file to log the work in.
    """
    workers_for = placement(cost_in, reactor, workers, queue)
    held = TransformService(max_length=max_length, cost=cost, workers=workers_for, work_log=work_log)
    factory = TransformFactory(held, timeout=timeout, clock=reactor, log_clients=log_clients)
    return ServerTree("transformedpoetry", held, factory, where, "Serving transforms", reactor)


class ProxyTree(ServerTree):
    """A proxy's tree; ``upstream_of``: a server of the same process whose port is its upstream's,
    known only once that server listens (``poetrynow serve --ports 0,...``)."""

    upstream_of: ListeningService | None = None

    def follow(self) -> None:
        """Take the upstream's port now, at every start (a restarted server may have a new one)."""
        if self.upstream_of is None:
            return
        if self.upstream_of.listening is None:
            raise RuntimeError("the proxy's upstream is not listening yet: start it first")
        upstream = Address(self.held.upstream.host, self.upstream_of.port)
        self.held.upstream = upstream
        self.listener.what = f"Proxying {upstream}"

    def privilegedStartService(self):
        self.follow()
        super().privilegedStartService()

    def startService(self):
        self.follow()
        super().startService()


def poetry_proxy(
    upstream: Address,
    where: Where = HERE,
    timeout: float | None = None,
    log_clients: bool = True,
    reactor=None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    plain: bool = False,
    upstream_of: ListeningService | None = None,
) -> ServerTree:
    held = ProxyService(
        upstream, reactor=reactor, timeout=timeout, log_clients=log_clients, max_bytes=max_bytes
    )
    factory = PoetryProxyFactory(held, plain=plain)
    tree = ProxyTree("poetryproxy", held, factory, where, f"Proxying {upstream}", reactor)
    tree.upstream_of = upstream_of
    return tree
