"""One run of one engine: the engine, its reporter, and a live display if asked for.

``get-poetry`` and the demo both run engines through :func:`fetch`, so they
report, show progress and collect events for a timeline the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from poetrynow import stopping
from poetrynow.address import Address
from poetrynow.clients import ENGINES, EngineOptions
from poetrynow.collector import few_collections
from poetrynow.events import Event, Failed, Sink, TransformFailed
from poetrynow.progress import live_progress
from poetrynow.report import Summary, reporter_for
from poetrynow.stopping import Interrupted

if TYPE_CHECKING:
    from poetrynow.tracing import TraceFile


def fetch(
    engine: str,
    addresses: Sequence[Address],
    options: EngineOptions,
    out=None,
    err=None,
    as_json: bool = False,
    print_poems: bool = True,
    progress: bool = False,
    keep_events: bool = False,
    trace: TraceFile | None = None,
    trace_name: str | None = None,
    chunk_lines: bool = True,
    watch: Sink | None = None,
) -> Summary:
    """Run one engine with its reporter (and a live display, when asked for and possible).

    ``keep_events``: the summary keeps the run's events, for a timeline (bounded:
    :mod:`poetrynow.report.kept`); otherwise only the poems and the failures.
    ``trace``: the run is also written to it, as a process named ``trace_name``
    (:mod:`poetrynow.tracing`), its loop's waits included. ``chunk_lines``: the reporter
    prints a line per read (the articles' output; never under a live display);
    ``watch``: one more consumer of the events (the demo's progress line).
    """
    stopping.begin()  # an earlier run's stop, in a process that went on, hides nothing here
    live = live_progress(progress and not as_json)
    info = ENGINES[engine]
    reporter = reporter_for(
        info.style,
        as_json,
        out=out,
        err=err,
        print_poems=print_poems,
        chunk_lines=chunk_lines and live is None,
        keep_events=keep_events,
    )

    def reported(event: Event) -> None:
        # Once a signal has asked the run to stop, the failures its shutdown causes are
        # not news: the command says in one line what was cut short. Poems still count.
        if not (stopping.requested and isinstance(event, (Failed, TransformFailed))):
            reporter.event(event)

    sink: Sink = reported if live is None else tee(live.event, reported)
    if watch is not None:
        sink = tee(watch, sink)

    runner = info.load()  # imports are not part of the run: time starts at the first task
    traced = None
    if trace is not None:
        traced = trace.run(trace_name or f"get-poetry --engine {engine}", options.clock)
        options = dataclasses.replace(options, watch=traced)
        sink = tee(traced.event, sink)
    reporter.about["engine"] = engine
    if hasattr(runner, "event_loop"):
        reporter.about["loop"] = runner.event_loop(options)
        if traced is not None:  # a traced asyncio run is not on uvloop: the trace says which loop it is
            traced.name += f" [{reporter.about['loop']}]"
    reporter.begin(options.clock())
    try:
        with live if live is not None else contextlib.nullcontext(), few_collections():
            runner.run(list(addresses), sink, options)
    except Interrupted as stop:
        reporter.stop_flushing()
        # What was cut short: the caller says so in one line.
        stop.arrived = len(reporter.finished)  # type: ignore[attr-defined]
        stop.tasks = len(addresses)  # type: ignore[attr-defined]
        raise
    except Exception:  # a bug outside every task: what was written goes out before the caller's line
        reporter.stop_flushing()
        raise
    finally:
        if traced is not None:
            traced.close()
    return reporter.end(options.clock())


def tee(first: Sink, then: Sink) -> Sink:
    """A sink that hands each event to ``first``, then to ``then``."""

    def both(event: Event) -> None:
        first(event)
        then(event)

    return both
