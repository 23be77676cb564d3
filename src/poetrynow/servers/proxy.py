"""The poetry proxy (proxy 3.0 and more): a cache in front of a poetry server.

The first request fetches the poem upstream; requests that come meanwhile share
that one fetch; once it is in, every request gets the cached poem at once (on TCP in the accept
loop itself, by :class:`~poetrynow.servers.fast.onewrite.OneWritePort`, in the
fast edition). When
every client waiting on the fetch has hung up, the fetch is cancelled and the
upstream connection closed (Part 19). A failed fetch caches nothing: its waiting
clients are disconnected and the next request tries again.

A waiting client that half-closes (its FIN) may want its poem still, or may have
gone: nothing on the wire tells which until something is sent to it. So from
its FIN on, it is given the poem as it comes from upstream: a client that is
still there just has its first lines early, and one that has gone answers with
a reset, the next send fails, and its share of the fetch is cancelled, as Part
19's hang-up is. Such a client is its transport's streaming producer: one that
does not read pauses what is passed on to it once its transport's buffer is
full, so it holds one buffer, not a copy of the poem.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.address import Address
from poetrynow.clients.errors import DEFAULT_MAX_BYTES
from poetrynow.clients.get_poetry import describe_failure, get_poetry_at
from poetrynow.interfaces import IPoetryProxyService
from poetrynow.servers.common.ending import Answering
from poetrynow.servers.common.guard import costs_one_connection, reset_transport
from poetrynow.servers.common.logline import log_info
from poetrynow.servers.common.sending import send_rest

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
        # What the fetch under way has brought (bounded by max_bytes, as the fetch is), for the
        # waiting clients that half-closed, which are passed it as it comes.
        self.so_far = bytearray()
        self._streams: set[PoetryProxyProtocol] = set()

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
            self._fetch = get_poetry_at(
                self.upstream, self.reactor, self.timeout, max_bytes=self.max_bytes, on_bytes=self._came
            )
            self._fetch.addCallbacks(self._fetched, self._failed)
        elif self.log_clients:
            self.log.info("Joining the poem download under way.")
        return waiter

    def stream_to(self, client: PoetryProxyProtocol) -> None:
        """``client`` half-closed while it waits: it gets the poem as it comes, from now on."""
        self._streams.add(client)
        client.catch_up()

    def stop_streaming(self, client: PoetryProxyProtocol) -> None:
        self._streams.discard(client)

    def _came(self, data: bytes) -> None:
        self.so_far += data
        for client in list(self._streams):
            client.catch_up()

    def _done_fetching(self) -> None:
        self._fetch = None
        self.so_far, self._streams = bytearray(), set()

    def _forget(self, waiter: defer.Deferred) -> None:
        """A waiting client hung up; the last one to go takes the fetch with it."""
        self._waiters.remove(waiter)
        if not self._waiters and self._fetch is not None:
            self.log.info("Canceling poem download.")
            fetch = self._fetch
            self._done_fetching()
            fetch.cancel()

    def _fetched(self, poem: bytes) -> None:
        self._done_fetching()
        self.poem = poem
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(poem)

    def _failed(self, failure) -> None:
        self._done_fetching()
        if failure.check(defer.CancelledError):
            return
        self.log.warn("The poem download failed: {why}", why=describe_failure(failure))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(failure)


@implementer(IPushProducer)
class PoetryProxyProtocol(Answering):
    deferred: defer.Deferred | None = None
    streamed = 0  # bytes passed on as they came, after the client half-closed
    streaming = paused = False

    @costs_one_connection
    def connectionMade(self):
        self.deferred = self.factory.service.get_poem()
        self.deferred.addCallbacks(self._send, self._fail)

    def client_finished(self) -> None:
        if self.deferred is not None and not self.deferred.called:
            self.streaming = True
            self.transport.registerProducer(self, True)
            self.factory.service.stream_to(self)

    @costs_one_connection
    def catch_up(self) -> None:
        """Pass on what the fetch has brought since the last time, unless the transport is full."""
        so_far = self.factory.service.so_far
        if self.streaming and not self.paused and len(so_far) > self.streamed:
            self.transport.write(bytes(so_far[self.streamed :]))
            self.streamed = len(so_far)

    # IPushProducer, while streaming: the transport pauses us while its buffer is full.
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.catch_up()

    def stopProducing(self) -> None:
        self.paused = True

    @costs_one_connection
    def _send(self, poem: bytes):
        if self.streaming:
            self.streaming = False
            self.transport.unregisterProducer()
        send_rest(self, poem, self.streamed)

    @costs_one_connection
    def _fail(self, failure):
        # Already logged once by the service. Reset rather than close, so that the
        # client sees a failure, not an empty (or a short) poem.
        reset_transport(self.transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        Answering.connectionLost(self, reason)
        self.factory.service.stop_streaming(self)
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
