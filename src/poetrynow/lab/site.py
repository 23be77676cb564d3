"""The lab's HTTP side: the page, its script, the run's events as Server-Sent Events, and the traces.

Every request passes :func:`~poetrynow.lab.guard.refusal` first (the token, the
Origin). The routes:

- ``GET /`` the page; ``GET /lab.js``, ``GET /lab.css`` what it needs, from the package;
  ``GET /setup`` what it may choose from (engines, poems) and the demo's choice;
- ``GET /events`` the run's messages, one ``data:`` line of JSON each: what the run has
  said so far first (a page that reloads misses nothing), then as they come; a comment
  every :data:`HEARTBEAT` seconds keeps the connection alive;
- ``POST /run`` a new run (JSON: engines, servers, delay, and Part 20's transform or null):
  202, a 409 while one runs (or the last one is still stopping), a 400 with the reason
  for a bad setting; ``POST /cancel``;
- ``GET /trace?engine=E`` the trace ``--trace`` wrote for that engine's run.

A POST must send JSON (415 otherwise); every answer says not to cache, frame or sniff it.
A page that stops reading its events is dropped past a bound (:mod:`poetrynow.lab.pages`).

The HTTP layer is the faults API's (:mod:`poetrynow.relay.site`): a bounded body, a
deadline for a whole request, a bounded number of connections. Closing the page ends
its run: when the last page has gone for :data:`GONE_AFTER` seconds (a reload comes
back sooner), the run is cancelled.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from twisted.internet import task
from twisted.logger import Logger
from twisted.web import resource, server

from poetrynow.lab.guard import not_json, refusal
from poetrynow.lab.pages import Page
from poetrynow.lab.plan import Plan
from poetrynow.lab.runs import MAX_EVENTS, LabRun
from poetrynow.relay.site import MAX_CONNECTIONS, REQUEST_DEADLINE, BoundedRequest, FaultsChannel

#: Seconds between keep-alive comments on an open event stream.
HEARTBEAT = 15.0
#: Pages open at once on one lab's events.
MAX_PAGES = 8
#: Seconds without a page before a run is cancelled.
GONE_AFTER = 5.0
#: A run's settings are a few hundred bytes.
MAX_SETTINGS = 64 * 1024

#: On every answer: nothing cached (a token is in the address), framed, sniffed or referred on.
SAFE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)

log = Logger()

STATIC = {b"lab.js": "text/javascript; charset=utf-8", b"lab.css": "text/css; charset=utf-8"}


def event(message: dict) -> bytes:
    """One message as Server-Sent Events frame it: a ``data:`` line of JSON, then a blank line."""
    return b"data: " + json.dumps(message).encode("utf-8") + b"\n\n"


def page_file(name: str) -> bytes:
    return resources.files("poetrynow.lab.page").joinpath(name).read_bytes()


class Lab:
    """What the routes share: the token, the run (one at a time), the open event streams."""

    def __init__(self, reactor: Any, token: str):
        self.reactor, self.token = reactor, token
        self.port = 0  # set once listening: the page's own Origin names it
        self.run: LabRun | None = None
        self.pages: set[Page] = set()
        self.alone: Any = None
        self.stopping = False
        self.beat = task.LoopingCall(self.heartbeat)
        self.beat.clock = reactor

    def start(self) -> None:
        self.beat.start(HEARTBEAT, now=False).addErrback(lambda f: log.failure("the lab's heartbeat", f))

    def stop(self) -> Any:
        """The lab is ending: its run is cancelled, its children stopped; fires once they have ended."""
        self.stopping = True
        self.sit_out()
        if self.beat.running:
            self.beat.stop()
        run = self.run
        if run is not None:
            run.cancel("the lab stopped")
        for page in list(self.pages):
            page.finish()
        if run is None:
            return None
        return run.done.addBoth(lambda _: run.close())

    def busy(self) -> str | None:
        """Why a new run may not start now, or None."""
        run = self.run
        if run is None or run.done.called:
            return None
        if run.over:
            return "the last run is still stopping its servers: try again in a moment"
        return "a run is going on: cancel it first"

    def send(self, message: dict) -> None:
        self.write(event(message))

    def heartbeat(self) -> None:
        self.write(b": still here\n\n")

    def write(self, data: bytes) -> None:
        for page in list(self.pages):
            page.write(data)

    def opened(self, request: Any) -> Page:
        page = Page(request)
        self.pages.add(page)
        self.sit_out()
        request.notifyFinish().addBoth(lambda _: self.closed(page))
        return page

    def closed(self, page: Page) -> None:
        page.gone = True
        self.pages.discard(page)
        run = self.run
        if not self.pages and not self.stopping and run is not None and not run.over:
            self.sit_out()
            self.alone = self.reactor.callLater(GONE_AFTER, self.abandoned, run)

    def sit_out(self) -> None:
        """Forget a cancel that was waiting for the last page to come back."""
        if self.alone is not None and self.alone.active():
            self.alone.cancel()
        self.alone = None

    def abandoned(self, run: LabRun) -> None:
        self.alone = None
        if not self.pages and self.run is run:
            run.cancel("the page was closed")

    def begin(self, plan: Plan) -> None:
        """A new run; the last one, stopped already (:meth:`busy`), is forgotten, and anything it
        says late is not heard."""
        previous = self.run
        run = LabRun(plan, self.reactor, lambda message: self.send(message) if self.run is run else None)
        self.run = run
        if previous is not None:
            previous.close()
        run.start()


class Routes(resource.Resource):
    """Every route behind the guard."""

    isLeaf = True

    def __init__(self, lab: Lab):
        super().__init__()
        self.lab = lab

    def render(self, request: Any) -> Any:
        lab = self.lab
        for name, value in SAFE_HEADERS:
            request.setHeader(name, value)
        why = refusal(request, lab.token, lab.port)
        if why is not None:
            return answer(request, 403, {"error": why})
        if request.method == b"POST" and (why := not_json(request)) is not None:
            return answer(request, 415, {"error": why})
        path = request.path.rstrip(b"/") or b"/"
        name = path.lstrip(b"/")
        method = request.method
        if path == b"/" and method in (b"GET", b"HEAD"):
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return page_file("lab.html").replace(b"{{token}}", lab.token.encode("ascii"))
        if name in STATIC and method in (b"GET", b"HEAD"):
            request.setHeader(b"content-type", STATIC[name].encode("ascii"))
            return page_file(name.decode("ascii"))
        if name == b"setup" and method == b"GET":
            return answer(request, 200, offered())
        if name == b"events" and method == b"GET":
            return self.events(request)
        if name == b"run" and method == b"POST":
            return self.start_run(request)
        if name == b"cancel" and method == b"POST":
            if lab.run is not None:
                lab.run.cancel()
            return answer(request, 200, {"cancelled": lab.run is not None})
        if name == b"trace" and method == b"GET":
            return self.trace(request)
        return answer(request, 404, {"error": f"no such page: {path.decode('utf-8', 'replace')}"})

    def events(self, request: Any) -> Any:
        lab = self.lab
        if len(lab.pages) >= MAX_PAGES:
            return answer(request, 503, {"error": f"{MAX_PAGES} pages are open on this lab already"})
        request.setHeader(b"content-type", b"text/event-stream")
        page = lab.opened(request)
        page.write(b": the lab's events\n\n")
        run = lab.run
        if run is not None:
            for message in run.kept:
                page.write(event(message), replay=True)
            if run.dropped:
                page.write(event({"type": "dropped", "count": run.dropped, "kept": MAX_EVENTS}), replay=True)
        return server.NOT_DONE_YET

    def start_run(self, request: Any) -> Any:
        lab = self.lab
        busy = lab.busy()
        if busy is not None:
            return answer(request, 409, {"error": busy})
        try:
            plan = Plan.from_json(json.loads(request.content.read().decode("utf-8") or "{}"))
        except ValueError as problem:  # (a JSONDecodeError, a bad setting: each says why)
            return answer(request, 400, {"error": str(problem)})
        except (TypeError, RecursionError):  # (JSON of a shape no setting has, or nested past reason)
            return answer(request, 400, {"error": "the run's settings are not of the page's shape"})
        lab.begin(plan)
        return answer(request, 202, {"started": list(plan.engines)})

    def trace(self, request: Any) -> Any:
        run = self.lab.run
        engine = (request.args.get(b"engine") or [b""])[0].decode("utf-8", "replace")
        path = run.traces.get(engine) if run is not None else None
        if path is None:
            return answer(request, 404, {"error": f"no trace of {engine!r} in the last run"})
        request.setHeader(b"content-type", b"application/json")
        disposition = f'attachment; filename="poetrynow-{engine}.json"'
        request.setHeader(b"content-disposition", disposition.encode("ascii"))
        with open(path, "rb") as f:
            return f.read()


def offered() -> dict:
    """What the page may choose from, and the demo's own choice to start with."""
    from poetrynow.clients import ENGINES, XFORM
    from poetrynow.demo import DEMO_SERVERS
    from poetrynow.lab.part20 import MAX_COST
    from poetrynow.poems import bundled_poems
    from poetrynow.servers.transform.costs import KINDS, PLACES

    return {
        "engines": [
            {"name": e.name, "model": e.model, "concurrent": e.concurrent, "xform": XFORM in e.takes}
            for e in ENGINES.values()
        ],
        "poems": [poem.name for poem in bundled_poems()],
        "servers": [list(server) for server in DEMO_SERVERS],
        "chosen": ["blocking", "select"],
        "delay": 0.1,
        "transform": {"cost": 0.5, "max_cost": MAX_COST, "kinds": list(KINDS), "places": list(PLACES)},
    }


def answer(request: Any, status: int, body: dict) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode("utf-8")


class LabRequest(BoundedRequest):
    max_body = MAX_SETTINGS


class LabSite(server.Site):
    """The lab's site: the faults API's bounded channel and requests, no access log."""

    noisy = False
    protocol = FaultsChannel  # type: ignore[assignment]
    open_channels = 0
    request_deadline = REQUEST_DEADLINE
    max_connections = MAX_CONNECTIONS

    def __init__(self, lab: Lab, reactor: Any = None):
        super().__init__(Routes(lab), requestFactory=LabRequest, reactor=reactor)
        self.lab = lab

    def buildProtocol(self, addr: Any) -> Any:
        if self.open_channels >= self.max_connections:
            return None
        return super().buildProtocol(addr)

    def log(self, request: Any) -> None:
        pass
