"""The API's HTTP server: twisted.web with a limit on everything a peer can fill or stretch.

The API (:mod:`poetrynow.relay.api`) runs on the reactor that moves the relays'
bytes, so nothing a peer sends is buffered or waited for without a limit: the
request line and headers are bounded by twisted.web (16 KiB), the body here
(:data:`MAX_BODY`); a request must be whole :data:`REQUEST_DEADLINE` seconds
after its first byte (twisted.web's idle timeout restarts at every byte, so one
byte a minute would hold a connection for ever), and at most
:data:`MAX_CONNECTIONS` API connections are open at once (more are refused).
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server

from poetrynow.relay.api import TOXIPROXY_VERSION, FaultsResource, Handlers

#: The largest request body taken. A populate of a hundred proxies is a few KiB;
#: past this a peer is filling memory, not configuring relays.
MAX_BODY = 1 << 20

#: Seconds from a request's first byte until it must be whole (toxiproxy's server: 15 s too).
REQUEST_DEADLINE = 15.0

#: API connections open at once; a client library holds one or two, a test suite a few.
MAX_CONNECTIONS = 256


class BoundedRequest(server.Request):
    """A request whose body is refused past :data:`MAX_BODY`, as soon as that is known.

    twisted.web spools any body to a temporary file, whatever its size. Here a
    declared length over the limit is refused before a byte of it is read, and a
    chunked body as soon as it passes the limit: a 413 with the error body, then
    the connection is closed (the rest of the body is never read, so there is no
    state to resynchronise).
    """

    max_body = MAX_BODY
    refused = False

    def gotLength(self, length: int | None) -> None:
        self.content = io.BytesIO()  # bounded, so memory is the right place for it
        if length is not None and length > self.max_body:
            self.refuse()

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        content: Any = self.content  # the BytesIO of gotLength
        if content.tell() + len(data) > self.max_body:
            self.refuse()
            return
        content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        whole = getattr(self.channel, "request_whole", None)
        if whole is not None:
            whole()
        super().requestReceived(command, path, version)

    def process(self) -> None:
        if not self.refused:
            super().process()

    def refuse(self) -> None:
        self.refused = True
        # No "100 Continue" after the refusal: twisted.web sends it after gotLength.
        self.requestHeaders.removeHeader(b"expect")
        status = 413
        body = json.dumps({"error": f"request body over {self.max_body} bytes", "status": status}).encode()
        head = (
            f"HTTP/1.1 {status} Request Entity Too Large\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        transport: Any = self.channel.transport
        transport.write(head + body)
        self.channel.loseConnection()


class FaultsChannel(http.HTTPChannel):
    """An HTTP/1.1 channel whose requests have a deadline: :data:`REQUEST_DEADLINE` seconds from
    the first byte of a request until it is whole; a client still sending then is aborted.

    Armed when the connection is made, and again at the first byte received while no
    request is partly read; cancelled when the request is whole
    (:meth:`BoundedRequest.requestReceived` says so). So a connection that says nothing
    holds one of the :data:`MAX_CONNECTIONS` places for the deadline, not for
    twisted.web's idle timeout; a keep-alive connection between requests, or one
    waiting for its answer, has only the idle timeout.
    """

    deadline: Any = None
    site: Any

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.open_channels += 1
        self.deadline = self.callLater(self.site.request_deadline, self.too_slow)

    def dataReceived(self, data: bytes) -> None:
        if self.deadline is None and data:
            self.deadline = self.callLater(self.site.request_deadline, self.too_slow)
        super().dataReceived(data)

    def request_whole(self) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None

    def too_slow(self) -> None:
        self.deadline = None
        transport: Any = self.transport  # a TCP transport, which can abort
        transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.request_whole()
        self.site.open_channels -= 1
        super().connectionLost(reason)


class FaultsSite(server.Site):
    """The API's site: bounded requests and connections, each request on a deadline, idle clients
    dropped, no access log line per request.

    ``reactor`` times the idle connections and the deadlines (a Clock in a unit test).
    """

    noisy = False
    protocol = FaultsChannel  # type: ignore[assignment]  # HTTP/1.1 only: toxiproxy's clients speak it
    open_channels = 0

    def __init__(
        self,
        handlers: Handlers,
        idle_timeout: float = 60.0,
        reactor=None,
        poetrynow_version: str = "",
        request_deadline: float = REQUEST_DEADLINE,
        max_connections: int = MAX_CONNECTIONS,
    ):
        super().__init__(
            FaultsResource(handlers, poetrynow_version),
            requestFactory=BoundedRequest,
            timeout=idle_timeout,
            reactor=reactor,
        )
        self.request_deadline, self.max_connections = request_deadline, max_connections

    def buildProtocol(self, addr):
        """A channel, or None (the connection is closed at once) past :data:`MAX_CONNECTIONS`."""
        if self.open_channels >= self.max_connections:
            return None
        return super().buildProtocol(addr)

    def log(self, request) -> None:  # a line per request is a log file's job; a test makes hundreds
        pass


def faults_site(relays, version: str = TOXIPROXY_VERSION, reactor=None, **options: Any) -> FaultsSite:
    """The toxiproxy API over ``relays``, for ``listenTCP``; ``version`` is what ``GET /version`` says;
    ``options`` go to :class:`FaultsSite`."""
    from poetrynow import __version__

    return FaultsSite(Handlers(relays, version), reactor=reactor, poetrynow_version=__version__, **options)
