"""toxiproxy's HTTP API on twisted.web, over :class:`~poetrynow.relay.relay.Relays`.

A client library written for toxiproxy must work against ``poetrynow faults``
unmodified, so the routes, methods, status codes, defaults and JSON shapes are
toxiproxy's (its README's "HTTP API" and its api.go): 201 for a new proxy and
for ``/populate``, 200 for a new toxic, 204 for a delete and for ``/reset``,
``{"error": ..., "status": N}`` for a refusal. Where toxiproxy answers in plain
text (its 405, its unknown path, its browser refusal) this API answers in the
same JSON shape, which a client reads the same way.

The API runs on the reactor that moves the relays' bytes, so nothing here
blocks, and nothing a peer sends is buffered or waited for without a limit: the
request line and headers are bounded by twisted.web (16 KiB), the body here
(:data:`MAX_BODY`); a request must be whole :data:`REQUEST_DEADLINE` seconds
after its first byte (twisted.web's idle timeout restarts at every byte, so one
byte a minute would hold a connection for ever), and at most
:data:`MAX_CONNECTIONS` API connections are open at once (more are refused). A
handler's unexpected exception is logged with its traceback and costs that
request a 500, not the server.

``GET /version`` answers toxiproxy's shape with the toxiproxy version whose API
this one follows (:data:`TOXIPROXY_VERSION`), which clients parse; poetrynow's
own version is in the ``X-Poetrynow-Version`` header of every answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from poetrynow.relay.toxics import ApiError

log = Logger(namespace="poetrynow.relay.api")

#: The largest request body taken. A populate of a hundred proxies is a few KiB;
#: past this a peer is filling memory, not configuring relays.
MAX_BODY = 1 << 20

#: The methods that update a proxy or a toxic: toxiproxy takes POST, and PATCH since 2.5.
UPDATE = ("POST", "PATCH")

#: What ``GET /version`` says: the toxiproxy release whose API this one follows.
TOXIPROXY_VERSION = "2.12.0"

#: Seconds from a request's first byte until it must be whole (toxiproxy's server: 15 s too).
REQUEST_DEADLINE = 15.0

#: API connections open at once; a client library holds one or two, a test suite a few.
MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class Answer:
    """What a handler answers: a status and a JSON-able payload (None: no body, as for 204)."""

    status: int
    payload: Any = None


def refusal(status: int, message: str, **more: Any) -> Answer:
    return Answer(status, {"error": message, "status": status, **more})


def proxy_json(relay) -> dict[str, Any]:
    """A proxy as toxiproxy shows it: its fields and its toxics, in the order they were added."""
    shown = dict(relay.as_json())
    if "toxics" not in shown:
        toxics = relay.toxics.values() if isinstance(relay.toxics, dict) else relay.toxics
        shown["toxics"] = [toxic.as_json() for toxic in toxics]
    return shown


def read_json(request: server.Request, shape: type, what: str) -> Any:
    """The request's body as JSON of ``shape`` (dict or list); a 400 in toxiproxy's words if not.

    toxiproxy decodes the first JSON value of the body and names the decoder's
    complaint after ``bad request body:``; an empty body is ``EOF`` there.
    """
    data = request.content.read() if request.content is not None else b""
    if not data.strip():
        raise ApiError(400, "bad request body: EOF")
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except ValueError as problem:  # UnicodeDecodeError is one too
        raise ApiError(400, f"bad request body: {problem}") from None
    except RecursionError:  # "[" nested deeper than Python's stack
        raise ApiError(400, "bad request body: nested too deep") from None
    if not isinstance(body, shape):
        raise ApiError(400, f"bad request body: expected {what}, got {type(body).__name__}")
    return body


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON, whatever Python's json module takes: Go's decoder refuses them."""
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


class Handlers:
    """The endpoints, one method each, over one :class:`Relays`: request in, :class:`Answer` out.

    Each takes the request and the names in its path; the routing, the errors and
    the writing are :class:`FaultsResource`'s, so that each method reads as the
    endpoint's contract.
    """

    def __init__(self, relays, version: str = TOXIPROXY_VERSION):
        self.relays = relays
        self.version = version

    def show_version(self, request) -> Answer:
        return Answer(200, {"version": self.version})

    def proxy_index(self, request) -> Answer:
        return Answer(200, {name: proxy_json(relay) for name, relay in self.relays.all().items()})

    def proxy_create(self, request) -> Answer:
        relay = self.relays.create(read_json(request, dict, "a proxy object"))
        return Answer(201, proxy_json(relay))

    def populate(self, request) -> Deferred:
        """Create or replace a list of proxies, as toxiproxy does: a bad body changes nothing; a
        relay that cannot listen stops the list, and the refusal lists the proxies made before it."""

        def refused(failure) -> Answer:
            failure.trap(ApiError)
            created = getattr(failure.value, "created", [])
            proxies = [proxy_json(relay) for relay in created]
            return refusal(failure.value.status, failure.value.message, proxies=proxies)

        pending = maybeDeferred(lambda: self.relays.populate(read_json(request, list, "a list of proxies")))
        return pending.addCallbacks(
            lambda relays: Answer(201, {"proxies": [proxy_json(relay) for relay in relays]}), refused
        )

    def reset(self, request) -> Deferred:
        """Answered once every relay listens again."""
        return maybeDeferred(self.relays.reset).addCallback(lambda _: Answer(204))

    def proxy_show(self, request, proxy: str) -> Answer:
        return Answer(200, proxy_json(self.relays.get(proxy)))

    def proxy_update(self, request, proxy: str) -> Deferred:
        """Answered once the relay listens where it should (a move waits for the old port to close)."""
        self.relays.get(proxy)  # an unknown proxy is a 404 before its body is looked at, as there
        body = read_json(request, dict, "a proxy object")
        updated = maybeDeferred(self.relays.update, proxy, body)
        return updated.addCallback(lambda relay: Answer(200, proxy_json(relay)))

    def proxy_delete(self, request, proxy: str) -> Deferred:
        """Answered once the relay has stopped listening, so that its port is free when the client hears."""
        deleted = self.relays.delete(proxy)
        return deleted.addCallback(lambda _: Answer(204))

    def toxic_index(self, request, proxy: str) -> Answer:
        return Answer(200, proxy_json(self.relays.get(proxy))["toxics"])

    def toxic_create(self, request, proxy: str) -> Answer:
        relay = self.relays.get(proxy)
        return Answer(200, relay.add_toxic(read_json(request, dict, "a toxic object")).as_json())

    def toxic_show(self, request, proxy: str, toxic: str) -> Answer:
        return Answer(200, self.relays.get(proxy).toxic(toxic).as_json())

    def toxic_update(self, request, proxy: str, toxic: str) -> Answer:
        relay = self.relays.get(proxy)
        relay.toxic(toxic)
        return Answer(200, relay.update_toxic(toxic, read_json(request, dict, "a toxic object")).as_json())

    def toxic_delete(self, request, proxy: str, toxic: str) -> Answer:
        self.relays.get(proxy).remove_toxic(toxic)
        return Answer(204)


#: Path patterns (None: a name) and, for each, the handler of each method.
ROUTES: tuple[tuple[tuple[str | None, ...], dict[str, str]], ...] = (
    (("version",), {"GET": "show_version"}),
    (("proxies",), {"GET": "proxy_index", "POST": "proxy_create"}),
    (("populate",), {"POST": "populate"}),
    (("reset",), {"POST": "reset"}),
    (
        ("proxies", None),
        {"GET": "proxy_show", **dict.fromkeys(UPDATE, "proxy_update"), "DELETE": "proxy_delete"},
    ),
    (("proxies", None, "toxics"), {"GET": "toxic_index", "POST": "toxic_create"}),
    (
        ("proxies", None, "toxics", None),
        {"GET": "toxic_show", **dict.fromkeys(UPDATE, "toxic_update"), "DELETE": "toxic_delete"},
    ),
)


def route(path: bytes) -> tuple[dict[str, str], list[str]] | None:
    """The methods for ``path`` and the names in it, or None for a path toxiproxy has not."""
    # A base URL ending in "/" joined to "/proxies" gives "//proxies": toxiproxy's router
    # cleans that path, so the leading slashes count as one here.
    try:
        segments = [unquote(part.decode("ascii"), errors="strict") for part in path.lstrip(b"/").split(b"/")]
    except UnicodeError:
        return None
    for pattern, methods in ROUTES:
        if len(pattern) == len(segments) and all(
            want == got if want is not None else bool(got)
            for want, got in zip(pattern, segments, strict=True)
        ):
            return methods, [got for want, got in zip(pattern, segments, strict=True) if want is None]
    return None


class FaultsResource(resource.Resource):
    """The whole API as one leaf: it routes, calls the handler, and writes the JSON answer."""

    isLeaf = True

    def __init__(self, handlers: Handlers, poetrynow_version: str = ""):
        super().__init__()
        self.handlers = handlers
        self.poetrynow_version = poetrynow_version

    def render(self, request: server.Request):
        request.setHeader(b"x-poetrynow-version", self.poetrynow_version.encode())
        try:
            answer = self.dispatch(request)
        except ApiError as problem:
            answer = refusal(problem.status, problem.message)
        except Exception:
            answer = internal_error(request)
        if isinstance(answer, Deferred):
            self.answer_later(request, answer)
            return server.NOT_DONE_YET
        body = self.write(request, answer)
        if answer.payload is None:  # finished here: twisted.web's render would say Content-Length: 0
            request.finish()
            return server.NOT_DONE_YET
        return body

    def dispatch(self, request: server.Request) -> Answer | Deferred:
        # toxiproxy refuses browsers: a web page could otherwise drive the API
        # through one with a "simple" cross-site POST, which needs no preflight.
        agent = request.getHeader(b"user-agent") or b""
        if agent.startswith(b"Mozilla/"):
            return refusal(403, "user agent not allowed")
        found = route(request.path)
        if found is None:
            return refusal(404, "not found")
        methods, names = found
        method = _text(request.method)
        if method not in methods:
            request.setHeader(b"allow", ", ".join(methods).encode())
            return refusal(405, f"method {method} not allowed")
        handler: Callable[..., Any] = getattr(self.handlers, methods[method])
        return handler(request, *names)

    def answer_later(self, request: server.Request, pending: Deferred) -> None:
        """Finish ``request`` with what ``pending`` gives, unless its client has gone meanwhile."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def failed(failure) -> Answer:
            if failure.check(ApiError):
                return refusal(failure.value.status, failure.value.message)
            return internal_error(request, failure)

        def deliver(answer: Answer) -> None:
            if gone:
                return
            body = self.write(request, answer)
            if body:
                request.setHeader(b"content-length", str(len(body)).encode())
                request.write(body)
            request.finish()

        pending.addErrback(failed).addCallback(deliver).addErrback(
            lambda failure: log.failure("faults API: answering failed", failure)
        )

    @staticmethod
    def write(request: server.Request, answer: Answer) -> bytes:
        """Set the status and headers of ``answer``; its body, which twisted.web writes."""
        request.setResponseCode(answer.status)
        if answer.payload is None:
            return b""
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(answer.payload).encode()


def internal_error(request: server.Request, failure=None) -> Answer:
    """A bug in a handler: logged with its traceback (log.failure is critical), a 500 for this request."""
    method, path = _text(request.method), _text(request.path)
    log.failure("faults API: {method} {path} failed", failure, method=method, path=path)
    return refusal(500, "internal error; the faults server logged it")


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("latin-1")


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
