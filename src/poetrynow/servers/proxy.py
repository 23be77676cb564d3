"""The poetry proxy (proxy 3.0 and more): a cache in front of a poetry server.

The first request fetches the poem upstream; requests that come meanwhile share
that one fetch; once it is in, every request gets the cached poem at once (on TCP in the accept
loop itself, by :class:`~poetrynow.servers.fastpath.onewrite.OneWritePort`, in the
fast edition). When
every client waiting on the fetch has hung up, the fetch is cancelled and the
upstream connection closed (Part 19). A failed fetch caches nothing: its waiting
clients are disconnected and the next request tries again.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.address import Address
from poetrynow.clients.errors import DEFAULT_MAX_BYTES
from poetrynow.clients.get_poetry import describe_failure, get_poetry_at
from poetrynow.interfaces import IPoetryProxyService
from poetrynow.servers.logline import log_info
from poetrynow.servers.sending import send_rest

hits_log = Logger()  # module-level: a class's Logger is built anew on each use


@implementer(IPoetryProxyService)
class ProxyService(service.Service):
    log = Logger()

    def __init__(
        self,
        upstream: Address,
        reactor=None,
        timeout: float | None = None,
        log_clients: bool = True,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ):
        self.upstream, self.reactor, self.timeout = upstream, reactor, timeout
        self.max_bytes = max_bytes  # an upstream that sends more fails the fetch; nothing is cached
        # Off with --quiet: a cache hit is then counted, not logged.
        self.log_clients = log_clients
        self.cache_hits = 0
        self.poem: bytes | None = None
        self._fetch: defer.Deferred | None = None
        self._waiters: list[defer.Deferred] = []

    def hit(self, address: object = None, nbytes: int = 0) -> None:
        """A client served from the cache: counted, and logged unless quiet."""
        self.cache_hits += 1
        if self.log_clients:
            log_info(hits_log, "Using cached poem.")

    def get_poem(self) -> defer.Deferred:
        if self.poem is not None:
            self.hit()
            return defer.succeed(self.poem)
        waiter: defer.Deferred[bytes] = defer.Deferred(self._forget)
        self._waiters.append(waiter)
        if self._fetch is None:
            self.log.info("Fetching poem from server.")
            self._fetch = get_poetry_at(self.upstream, self.reactor, self.timeout, max_bytes=self.max_bytes)
            self._fetch.addCallbacks(self._fetched, self._failed)
        elif self.log_clients:
            self.log.info("Joining the poem download under way.")
        return waiter

    def _forget(self, waiter: defer.Deferred) -> None:
        """A waiting client hung up; the last one to go takes the fetch with it."""
        self._waiters.remove(waiter)
        if not self._waiters and self._fetch is not None:
            self.log.info("Canceling poem download.")
            fetch, self._fetch = self._fetch, None
            fetch.cancel()

    def _fetched(self, poem: bytes) -> None:
        self._fetch = None
        self.poem = poem
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(poem)

    def _failed(self, failure) -> None:
        self._fetch = None
        if failure.check(defer.CancelledError):
            return
        self.log.warn("The poem download failed: {why}", why=describe_failure(failure))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(failure)


class PoetryProxyProtocol(Protocol):
    transport: Any  # a TCP transport, which can also abort and take a producer

    def connectionMade(self):
        self.deferred = self.factory.service.get_poem()
        self.deferred.addCallbacks(self._send, self._fail)

    def _send(self, poem: bytes):
        send_rest(self.transport, poem)

    def _fail(self, failure):
        # Already logged once by the service. Abort rather than close, so that the
        # client sees a failure, not an empty poem.
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred.cancel()  # no effect if the poem was already sent


class PoetryProxyFactory(Factory):
    protocol = PoetryProxyProtocol
    #: The fast edition's port: on TCP, a cache hit is answered in the accept loop.
    fast_port = "one-write"
    noisy = False

    def __init__(self, service: ProxyService, plain: bool = False):
        self.service = service
        self.plain = plain
        # What a OneWritePort asks: a cache hit is answered in its accept loop.
        self.answered = service.hit

    def answer_now(self) -> bytes | None:
        return self.service.poem
