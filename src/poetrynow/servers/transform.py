"""The transform server: one netstring ``name.poem`` in, one netstring out, close.

Anything else (no ``.``, an unknown transform, a transform that raises, a
malformed or over-long netstring, no request within the timeout) closes the
connection without an answer and logs one line; the server goes on serving.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.interfaces import ITransformService
from poetrynow.netstring import DEFAULT_MAX_LENGTH, NetstringDecoder, NetstringError, encode
from poetrynow.servers.ending import Answering
from poetrynow.servers.guard import costs_one_connection
from poetrynow.servers.listen import peer_name
from poetrynow.transforms import TRANSFORMS, TransformError, apply


@implementer(ITransformService)
class TransformService(service.Service):
    def __init__(self, registry=None, max_length: int = DEFAULT_MAX_LENGTH):
        self.registry = dict(TRANSFORMS if registry is None else registry)
        self.max_length = max_length

    def transform(self, name: str, poem: bytes) -> bytes:
        return apply(name, poem, self.registry)


class TransformProtocol(Answering, TimeoutMixin):
    """One request, one answer. A client may half-close once its request is sent: the
    answer still comes (:mod:`poetrynow.servers.ending`)."""

    log = Logger()
    heard = False  # some of a request came

    @costs_one_connection
    def connectionMade(self):
        self.decoder = NetstringDecoder(self.factory.service.max_length)
        self.answered = False
        self.peer = peer_name(self.transport.getPeer())
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign]  # the factory's clock
        self.setTimeout(self.factory.timeout)

    @costs_one_connection
    def dataReceived(self, data: bytes):
        if self.answered:
            Answering.dataReceived(self, data)  # dropped, up to a limit
            return
        self.heard = True
        try:
            requests = self.decoder.feed(data, most=1)  # one request; what follows is dropped
        except NetstringError as problem:
            self._refuse(str(problem))
            return
        if requests:
            self.answered = True
            self.setTimeout(None)
            self._answer(requests[0])

    def _answer(self, request: bytes):
        name, dot, poem = request.partition(b".")
        if not dot:
            self._refuse("request has no '.' between the transform's name and the poem")
            return
        try:
            result = self.factory.service.transform(name.decode("utf-8", errors="replace"), poem)
        except TransformError as problem:
            self._refuse(str(problem))
            return
        if self.factory.log_clients:
            self.log.info(
                "{name} of {nbytes} bytes for {peer}",
                name=name.decode("utf-8", "replace"),
                nbytes=len(poem),
                peer=self.peer,
            )
        self.transport.write(encode(result))
        self.finish()

    def _refuse(self, why: str):
        self.answered = True
        self.setTimeout(None)
        self.log.warn("Refused {peer}: {why}", peer=self.peer, why=why)
        self.finish()

    def client_finished(self) -> None:
        """The client's FIN: the answer goes on, but a request not yet whole never will be."""
        if self.answered:
            return
        if self.heard:
            self._refuse("the client closed its side before its request was whole")
        else:
            self.answered = True
            self.setTimeout(None)
            self.finish()  # it said nothing at all (a port check): nothing to log

    def timeoutConnection(self):
        self._refuse(f"no request within {self.factory.timeout:g} s")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        Answering.connectionLost(self, reason)
        self.setTimeout(None)


class TransformFactory(Factory):
    protocol = TransformProtocol
    noisy = False

    def __init__(
        self, service: TransformService, timeout: float | None = 60.0, clock=None, log_clients: bool = True
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.service = service
        # Off with --quiet: refusals are still logged, answers are not.
        self.log_clients = log_clients
        self.timeout = timeout
        self.clock = clock
