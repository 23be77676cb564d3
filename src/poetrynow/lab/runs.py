"""One run of the lab: real slow servers, then each engine's real ``get-poetry``, streamed.

A run is what ``poetrynow demo`` does, done by the commands themselves: a
``slowpoetry`` per server (its port read from its listening line), then, one engine
after another, ``get-poetry --engine E --json --trace FILE`` against them; with a
transform cost (Part 20, :mod:`poetrynow.lab.part20`) a ``transformedpoetry`` too, every
poem sent through it, and its work log read as it grows. Each line of ``--json`` is an
event; it goes to the page as it comes (``publish``), less the poem's text, and the
finished poems and the summary make the Part 2 table and sentence of
:mod:`poetrynow.demo`, so the page says what the demo says.

Bounded in every way a page could stretch it: the plan's checks (:mod:`poetrynow.lab.plan`),
one run at a time (the site's),
:data:`RUN_WITHIN` seconds in all, :data:`MAX_EVENTS` events kept for a page that
connects late; a cancel (or the end of the lab) stops every child.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from poetrynow.address import Address
from poetrynow.clients import ENGINES
from poetrynow.costruns import TRANSFORM
from poetrynow.demo import Outcome, results_table, verdict
from poetrynow.events import Finished
from poetrynow.lab.children import Child, spawn
from poetrynow.lab.part20 import TransformCost, WorkTail, part20_sentence
from poetrynow.lab.plan import Plan
from poetrynow.poems import load_poem
from poetrynow.report import Summary
from poetrynow.schedule import PoemSchedule
from poetrynow.servers.transform.pool import usable_cores
from poetrynow.transforms import cummingsify

#: Seconds a whole run may take, servers and every engine; then it is cancelled.
RUN_WITHIN = 300.0
#: Seconds a server may take to say its port; a get-poetry's own timeout for a silent server.
START_WITHIN = 30.0
CLIENT_TIMEOUT = 60
#: Events kept for a page that connects while the run goes on, or after it.
MAX_EVENTS = 50_000
#: Seconds between looks at the transform server's work log while an engine runs.
WORK_EVERY = 0.2
#: The messages that come by the thousand, past MAX_EVENTS not kept (the page that saw them live has them).
STREAMED = ("event", "work")


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
        self.work: list[dict] = []  # the transform server's work, each engine's in turn (Part 20)
        self.deadline: Any = None
        self.done: defer.Deferred[None] = defer.Deferred()

    def publish(self, message: dict) -> None:
        """To the page; kept for a page that connects later, but for events past :data:`MAX_EVENTS`
        (a run's own messages, its servers, engines, table or end, are always kept)."""
        if message["type"] not in STREAMED or len(self.kept) < MAX_EVENTS:
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
            args = [
                poem,
                "--quiet",
                "--num-bytes",
                str(num_bytes),
                "--delay",
                f"{plan.delay:g}",
                "--port",
                "0",
            ]
            port = await self._server("slowpoetry", args, poem)
            if self.over:
                return
            data = load_poem(poem).data
            size = len(data)
            addresses.append(Address("127.0.0.1", port))
            schedules.append(PoemSchedule(size, num_bytes, plan.delay))
            poems.append(data)
            self.publish(
                {"type": "server", "poem": poem, "port": port, "bytes": size, "num_bytes": num_bytes}
            )
        xform = None
        if plan.transform is not None:
            xform = await self._transform_server(plan.transform)
            if self.over:
                return
            poems = [cummingsify(poem.decode("utf-8")).encode("utf-8") for poem in poems]
        self.state = "running"
        outcomes = []
        for engine in plan.engines:
            summary = await self._engine(engine, addresses, xform)
            if self.over:
                return
            outcomes.append(Outcome(engine, summary, poems))
        cost = plan.transform.cost if plan.transform is not None else 0.0
        cores = self.cores()
        rows = [
            {"engine": o.engine, "measured": o.summary.elapsed, "whole": o.whole, "complete": o.complete}
            for o in outcomes
        ]
        self.publish(
            {
                "type": "table",
                "table": results_table(outcomes, schedules, per_poem=cost, cores=cores),
                "sentence": self._sentence(outcomes, schedules),
                "rows": rows,
            }
        )
        self.state = "done"

    def _sentence(self, outcomes: list[Outcome], schedules: list[PoemSchedule]) -> str:
        """The demo's sentence; with a transform, Part 20's (:mod:`poetrynow.lab.part20`)."""
        transform = self.plan.transform
        if transform is None:
            return verdict(outcomes, schedules)
        return part20_sentence(outcomes, schedules, self.work, transform, usable_cores())

    def cores(self) -> int | None:
        """The cores CPU work shares, for the ideal; None where the transforms wait (they all may at once)."""
        transform = self.plan.transform
        return usable_cores() if transform is not None and transform.kind == "cpu" else None

    async def _transform_server(self, transform: TransformCost) -> tuple[Address, WorkTail]:
        """``transformedpoetry`` with the page's cost: its address, and its work log as the lab reads it."""
        log = os.path.join(self.folder.name, "work.jsonl")
        args = [*transform.args(), "--work-log", log, "--quiet", "--port", "0"]
        port = await self._server("transformedpoetry", args, "the transform server")
        if self.over:  # (cancelled while it started: there is no server to tell of)
            return Address("127.0.0.1", port), WorkTail(log)
        self.publish(
            {"type": "transform", "port": port, "cost": transform.cost, "kind": transform.kind,
             "place": transform.place, "cores": self.cores(),
             "command": " ".join(["transformedpoetry", *transform.args()])}
        )  # fmt: skip
        return Address("127.0.0.1", port), WorkTail(log)

    async def _server(self, command: str, args: list[str], name: str) -> int:
        said: list[str] = []
        first: defer.Deferred[str] = defer.Deferred()

        def line(text: str) -> None:
            said.append(text)
            if not first.called:
                first.callback(text)

        child = self.started(Child(self.reactor, line))
        spawn(self.reactor, command, args, child)
        child.ended.addCallback(lambda _: None if first.called else first.callback(""))
        first.addTimeout(START_WITHIN, self.reactor, onTimeoutCancel=lambda *_: "")
        text = await first
        try:
            return int(text.rsplit(" ", 1)[1].rstrip(".\n"))
        except (IndexError, ValueError):
            if not self.over:
                raise RuntimeError(f"{command} {name} did not start: {child.reason()}") from None
            return 0

    async def _engine(
        self, engine: str, addresses: list[Address], xform: tuple[Address, WorkTail] | None
    ) -> Summary:
        """One engine's ``get-poetry`` against ``addresses`` (each poem then through ``xform``'s server)."""
        work = xform[1] if xform is not None else None
        self.publish({"type": "engine", "engine": engine, "model": ENGINES[engine].model})
        trace = os.path.join(self.folder.name, f"{engine}.json")
        finished: list[Finished] = []
        elapsed = [0.0]
        # The engine's clock at its t = 0, on this process's time.monotonic: each line reaches the lab
        # after its event by a pipe's latency or more, so the earliest estimate is the best.
        origin: list[float] = []

        def look() -> None:
            """The server's new work, on the engine's time axis (to within a pipe's latency)."""
            if work is None or not origin:
                return
            for done in work.new():
                self.work.append(done)
                self.publish(
                    {"type": "work", "engine": engine, "worker": done["worker"],
                     "began": round(done["began"] - origin[0], 6),
                     "ended": round(done["ended"] - origin[0], 6)}
                )  # fmt: skip

        def line(text: str) -> None:
            try:
                event = json.loads(text)
            except ValueError:
                return  # (a line of another kind: the trace's notice, a warning)
            if not isinstance(event, dict):
                return
            kind = event.get("event")
            t = event.get("t")
            if isinstance(t, (int, float)) and not isinstance(t, bool):
                estimate = time.monotonic() - float(t)
                origin[:] = [min(origin[0], estimate) if origin else estimate]
            number = event.get("task")
            if kind == "finished" and isinstance(number, int):
                poem = str(event.pop("poem", "")).encode("utf-8")
                finished.append(Finished(task=number, address=addresses[0], t=0.0, poem=poem))
            elif kind == "summary" and isinstance(event.get("elapsed"), (int, float)):
                elapsed[0] = float(event["elapsed"])
            event.pop("poem", None)
            self.publish({"type": "event", "engine": engine, **event})

        child = self.started(Child(self.reactor, line))
        ports = [str(address.port) for address in addresses]
        args = ["--engine", engine, "--json", "--timeout", str(CLIENT_TIMEOUT), "--trace", trace]
        if xform is not None:
            args += ["--xform", str(xform[0]), "--transform", TRANSFORM]
        spawn(self.reactor, "get-poetry", [*args, *ports], child)
        looking = task.LoopingCall(look)
        looking.clock = self.reactor
        if work is not None:
            looking.start(WORK_EVERY, now=False).addErrback(self._failed)
        try:
            status = await child.ended
        finally:
            if looking.running:
                looking.stop()
        look()  # (what the server logged after the last look: its log is whole once it answered)
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
        self.stop_children()

    def _ended(self, _: Any) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.stop_children()
        ending = [child.ended for child in self.children if child.status is None]
        defer.DeferredList(ending).addCallback(self._stopped)

    def _stopped(self, _: Any) -> None:
        """Every child has ended: the page may start the next run."""
        self.publish({"type": "stopped"})
        self.done.callback(None)

    def close(self) -> None:
        """Forget the run's traces (the lab is ending, or a new run replaces this one)."""
        self.folder.cleanup()
