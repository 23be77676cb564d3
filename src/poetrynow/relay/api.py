"""toxiproxy's HTTP API on twisted.web, over :class:`~poetrynow.relay.relays.Relays`.

A client library written for toxiproxy must work against ``poetrynow faults``
unmodified, so the routes, methods, status codes, defaults and JSON shapes are
toxiproxy's (its README's "HTTP API" and its api.go): 201 for a new proxy and
for ``/populate``, 200 for a new toxic, 204 for a delete and for ``/reset``,
``{"error": ..., "status": N}`` for a refusal. Where toxiproxy answers in plain
text (its 405, its unknown path, its browser refusal) this API answers in the
same JSON shape, which a client reads the same way.

The API runs on the reactor that moves the relays' bytes, so nothing here
blocks; the limits on what a peer may send it are :mod:`poetrynow.relay.site`'s. A
handler's unexpected exception is logged with its traceback and costs that
request a 500, not the server.

``GET /version`` answers toxiproxy's shape with the toxiproxy version whose API
this one follows (:data:`TOXIPROXY_VERSION`), which clients parse; poetrynow's
own version is in the ``X-Poetrynow-Version`` header of every answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.web import resource, server

from poetrynow.relay.toxics import ApiError

log = Logger(namespace="poetrynow.relay.api")

#: The methods that update a proxy or a toxic: toxiproxy takes POST, and PATCH since 2.5.
UPDATE = ("POST", "PATCH")

#: What ``GET /version`` says: the toxiproxy release whose API this one follows.
TOXIPROXY_VERSION = "2.12.0"


@dataclass(frozen=True)
class Answer:
    """What a handler answers: a status and a JSON-able payload (None: no body, as for 204)."""

    status: int
    payload: Any = None
    content_type: bytes = b"application/json"  # (bytes of another kind: the payload as it is)


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

    def tls_ca(self, request) -> Answer:
        """The CA that signs the TLS relays' certificate, as PEM, for a client to trust (poetrynow's own)."""
        return Answer(200, self.relays.authority().ca_pem, b"application/x-pem-file")


#: Path patterns (None: a name) and, for each, the handler of each method.
ROUTES: tuple[tuple[tuple[str | None, ...], dict[str, str]], ...] = (
    (("version",), {"GET": "show_version"}),
    (("proxies",), {"GET": "proxy_index", "POST": "proxy_create"}),
    (("populate",), {"POST": "populate"}),
    (("reset",), {"POST": "reset"}),
    (("tls", "ca"), {"GET": "tls_ca"}),
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
        request.setHeader(b"content-type", answer.content_type)
        if isinstance(answer.payload, bytes):
            return answer.payload
        return json.dumps(answer.payload).encode()


def internal_error(request: server.Request, failure=None) -> Answer:
    """A bug in a handler: logged with its traceback (log.failure is critical), a 500 for this request."""
    method, path = _text(request.method), _text(request.path)
    log.failure("faults API: {method} {path} failed", failure, method=method, path=path)
    return refusal(500, "internal error; the faults server logged it")


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("latin-1")
