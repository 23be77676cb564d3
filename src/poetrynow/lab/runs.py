"""One run of the lab: real slow servers, then each engine's real ``get-poetry``, streamed.

A run is what ``poetrynow demo`` does, done by the commands themselves: a
``slowpoetry`` per server (its port read from its listening line), then, one engine
after another, ``get-poetry --engine E --json --trace FILE`` against them. Each line of
``--json`` is an event; it goes to the page as it comes (``publish``), less the poem's
text, and the finished poems and the summary make the Part 2 table and sentence of
:mod:`poetrynow.demo`, so the page says what the demo says.

Bounded in every way a page could stretch it: the checks of the command line on
every number, at most :data:`MAX_SERVERS` servers and one run at a time (the site's),
:data:`RUN_WITHIN` seconds in all, :data:`MAX_EVENTS` events kept for a page that
connects late; a cancel (or the end of the lab) stops every child.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from poetrynow import validate
from poetrynow.address import Address
from poetrynow.clients import ENGINES
from poetrynow.demo import DEMO_SERVERS, Outcome, results_table, verdict
from poetrynow.events import Finished
from poetrynow.lab.children import Child, spawn
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.report import Summary
from poetrynow.schedule import PoemSchedule

#: At most this many servers in a run.
MAX_SERVERS = 5
#: The fewest bytes a chunk, and the longest delay: a run's reads, and its time, stay bounded.
MIN_BYTES, MAX_BYTES = 5, 100_000
MAX_DELAY = 1.0
#: Seconds a whole run may take, servers and every engine; then it is cancelled.
RUN_WITHIN = 300.0
#: Seconds a server may take to say its port; a get-poetry's own timeout for a silent server.
START_WITHIN = 30.0
CLIENT_TIMEOUT = 60
#: Events kept for a page that connects while the run goes on, or after it.
MAX_EVENTS = 50_000


@dataclass(frozen=True)
class Plan:
    """What the page asked for, checked as the command line checks it."""

    engines: tuple[str, ...]
    servers: tuple[tuple[str, int], ...]  # (poem, bytes a chunk)
    delay: float

    @classmethod
    def from_json(cls, body: Any) -> Plan:
        """The plan in ``body`` (the page's JSON); ValueError with a reason a person can act on."""
        if not isinstance(body, dict):
            raise ValueError("the run's settings must be a JSON object")
        engines = body.get("engines", ["blocking", "select"])
        if not isinstance(engines, list) or not engines:
            raise ValueError("choose at least one engine")
        for engine in engines:
            if engine not in ENGINES:
                raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
        if len(set(engines)) != len(engines):
            raise ValueError("an engine is chosen twice")
        servers = body.get("servers", [list(server) for server in DEMO_SERVERS])
        if not isinstance(servers, list) or not 1 <= len(servers) <= MAX_SERVERS:
            raise ValueError(f"from 1 to {MAX_SERVERS} servers")
        checked = []
        for server in servers:
            if not (isinstance(server, list) and len(server) == 2):
                raise ValueError("a server is [poem, bytes a chunk]")
            poem, num_bytes = str(server[0]), validate.positive_int(str(server[1]))
            if not MIN_BYTES <= num_bytes <= MAX_BYTES:
                raise ValueError(f"bytes a chunk must be from {MIN_BYTES} to {MAX_BYTES}, got {num_bytes}")
            try:
                load_poem(poem)
            except PoemNotFound as problem:
                raise ValueError(str(problem)) from None
            checked.append((poem, num_bytes))
        delay = validate.seconds(str(body.get("delay", 0.1)))
        if delay > MAX_DELAY:
            raise ValueError(f"the delay must be at most {MAX_DELAY:g} s in the lab, got {delay:g}")
        return cls(tuple(engines), tuple(checked), delay)


class LabRun:
    """One run; ``publish`` is given each message for the page (a dict, sent as JSON)."""

    def __init__(self, plan: Plan, reactor: Any, publish: Callable[[dict], None]):
        self.plan, self.reactor, self.publish_to = plan, reactor, publish
        self.state = "starting"
        self.children: list[Child] = []
        self.kept: list[dict] = []
        self.dropped = 0
        self.folder = tempfile.TemporaryDirectory(prefix="poetrynow-lab-")
        self.traces: dict[str, str] = {}
        self.deadline: Any = None
        self.done: defer.Deferred[None] = defer.Deferred()

    def publish(self, message: dict) -> None:
        if len(self.kept) < MAX_EVENTS:
            self.kept.append(message)
        else:
            self.dropped += 1
        self.publish_to(message)

    @property
    def over(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    def start(self) -> defer.Deferred[None]:
        self.deadline = self.reactor.callLater(RUN_WITHIN, self.cancel, f"the run took over {RUN_WITHIN:g} s")
        d = defer.ensureDeferred(self._run())
        d.addErrback(self._failed)
        d.addBoth(self._ended)
        return self.done

    async def _run(self) -> None:
        plan = self.plan
        self.publish({"type": "begin", "engines": list(plan.engines), "delay": plan.delay})
        addresses, schedules, poems = [], [], []
        for poem, num_bytes in plan.servers:
            port = await self._server(poem, num_bytes)
            if self.over:
                return
            size = len(load_poem(poem).data)
            addresses.append(Address("127.0.0.1", port))
            schedules.append(PoemSchedule(size, num_bytes, plan.delay))
            poems.append(load_poem(poem).data)
            self.publish(
                {"type": "server", "poem": poem, "port": port, "bytes": size, "num_bytes": num_bytes}
            )
        self.state = "running"
        outcomes = []
        for engine in plan.engines:
            summary = await self._engine(engine, addresses)
            if self.over:
                return
            outcomes.append(Outcome(engine, summary, poems))
        table = results_table(outcomes, schedules)
        rows = [
            {"engine": o.engine, "measured": o.summary.elapsed, "whole": o.whole, "complete": o.complete}
            for o in outcomes
        ]
        self.publish(
            {"type": "table", "table": table, "sentence": verdict(outcomes, schedules), "rows": rows}
        )
        self.state = "done"

    async def _server(self, poem: str, num_bytes: int) -> int:
        said: list[str] = []
        first: defer.Deferred[str] = defer.Deferred()

        def line(text: str) -> None:
            said.append(text)
            if not first.called:
                first.callback(text)

        child = self.started(Child(self.reactor, line))
        args = [
            poem,
            "--quiet",
            "--num-bytes",
            str(num_bytes),
            "--delay",
            f"{self.plan.delay:g}",
            "--port",
            "0",
        ]
        spawn(self.reactor, "slowpoetry", args, child)
        child.ended.addCallback(lambda _: None if first.called else first.callback(""))
        first.addTimeout(START_WITHIN, self.reactor, onTimeoutCancel=lambda *_: "")
        text = await first
        try:
            return int(text.rsplit(" ", 1)[1].rstrip(".\n"))
        except (IndexError, ValueError):
            if not self.over:
                raise RuntimeError(f"slowpoetry {poem} did not start: {child.reason()}") from None
            return 0

    async def _engine(self, engine: str, addresses: list[Address]) -> Summary:
        self.publish({"type": "engine", "engine": engine, "model": ENGINES[engine].model})
        trace = os.path.join(self.folder.name, f"{engine}.json")
        finished: list[Finished] = []
        elapsed = [0.0]

        def line(text: str) -> None:
            try:
                event = json.loads(text)
            except ValueError:
                return  # (a line of another kind: the trace's notice, a warning)
            if not isinstance(event, dict):
                return
            kind = event.get("event")
            if kind == "finished":
                poem = str(event.pop("poem", "")).encode("utf-8")
                finished.append(Finished(task=int(event["task"]), address=addresses[0], t=0.0, poem=poem))
            elif kind == "summary":
                elapsed[0] = float(event.get("elapsed", 0.0))
            event.pop("poem", None)
            self.publish({"type": "event", "engine": engine, **event})

        child = self.started(Child(self.reactor, line))
        ports = [str(address.port) for address in addresses]
        args = ["--engine", engine, "--json", "--timeout", str(CLIENT_TIMEOUT), "--trace", trace]
        spawn(self.reactor, "get-poetry", [*args, *ports], child)
        status = await child.ended
        if os.path.exists(trace):
            self.traces[engine] = trace
        self.publish(
            {"type": "ended", "engine": engine, "status": status, "why": child.reason() if status else ""}
        )
        return Summary(elapsed=elapsed[0], finished=finished)

    def started(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def cancel(self, why: str = "cancelled from the page") -> None:
        """Stop every child; the page hears why, once."""
        if self.over:
            return
        self.state = "cancelled"
        self.publish({"type": "cancelled", "why": why})
        self.stop_children()

    def stop_children(self) -> None:
        for child in self.children:
            child.stop()

    def _failed(self, failure: Any) -> None:
        if not self.over:
            self.state = "failed"
            self.publish({"type": "failed", "why": failure.getErrorMessage()})

    def _ended(self, _: Any) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.stop_children()
        ending = [child.ended for child in self.children if child.status is None]
        defer.DeferredList(ending).addCallback(lambda _: self.done.callback(None))

    def close(self) -> None:
        """Forget the run's traces (the lab is ending, or a new run replaces this one)."""
        self.folder.cleanup()
