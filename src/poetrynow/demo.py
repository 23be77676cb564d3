"""``poetrynow demo``: Part 2's experiment, run for real on the bundled poems.

Three blocking slow servers (the long poem at 30 bytes a chunk, the short ones
at 10, so they all take about as long), then each engine downloads all three
poems in turn. The table compares each engine's measured total with the best it
could do: the sum of the schedules for a client that waits on one server at a
time, the longest schedule for one that waits on all of them at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from poetrynow.address import Address
from poetrynow.clients import ENGINES, EngineOptions
from poetrynow.demo_line import EngineLine
from poetrynow.demo_servers import RunningServer, start_slow_server
from poetrynow.events import Sink
from poetrynow.poems import load_poem
from poetrynow.report import Summary
from poetrynow.schedule import PoemSchedule, ideal_total
from poetrynow.session import fetch
from poetrynow.stopping import Interrupted
from poetrynow.tables import format_table

if TYPE_CHECKING:
    from poetrynow.tracing import TraceFile

#: The article's three servers: (poem, bytes per chunk).
DEMO_SERVERS = [("lighthouse", 30), ("kettle", 10), ("relay", 10)]


def measure(
    engine: str,
    addresses: Sequence[Address],
    out: TextIO,
    err: TextIO | None = None,
    progress: bool = False,
    trace: TraceFile | None = None,
    reads: bool = True,
    watch: Sink | None = None,
) -> Summary:
    """Run one engine against the servers, its lines going to ``out`` (and, if asked, to ``trace``);
    ``reads``: a line per read, as get-poetry prints; ``watch``: one more consumer of the events."""
    # The terminal's stdout is looked up at each line, so a live display can redirect it.
    lines = None if out is sys.stdout else out
    return fetch(
        engine,
        addresses,
        EngineOptions(),
        out=lines,
        err=err,
        print_poems=False,
        progress=progress,
        keep_events=True,  # for the timeline the demo always draws
        trace=trace,
        trace_name=f"{engine}: {ENGINES[engine].model}",
        chunk_lines=reads,
        watch=watch,
    )


@dataclass
class Outcome:
    """One engine's run of the demo, judged against the poems the servers hold."""

    engine: str
    summary: Summary
    poems: Sequence[bytes]  # what each server serves, in task order

    @property
    def whole(self) -> int:
        """Poems that arrived byte for byte: a clean close of a short poem is not a poem."""
        return sum(e.poem == self.poems[e.task - 1] for e in self.summary.finished)

    @property
    def complete(self) -> bool:
        return self.whole == len(self.poems)

    def short(self) -> list[str]:
        """A line for each poem that ended early or came back different."""
        return [
            f"{self.engine}: task {e.task}'s poem is not whole: "
            f"{len(e.poem)} of {len(self.poems[e.task - 1])} bytes"
            for e in self.summary.finished
            if e.poem != self.poems[e.task - 1]
        ]


def results_table(
    outcomes: Sequence[Outcome],
    schedules: Sequence[PoemSchedule],
    per_poem: float = 0,
    cores: int | None = None,
) -> str:
    """A row per engine, whole first, fastest first; ``per_poem``: a poem's transform, in the ideal
    (CPU work: on ``cores`` at most at once)."""
    rows = []
    ranked = sorted(outcomes, key=lambda o: (not o.complete, o.summary.elapsed))
    for rank, outcome in enumerate(ranked, 1):
        ideal = ideal_total(schedules, ENGINES[outcome.engine].concurrent, per_poem, cores)
        elapsed = outcome.summary.elapsed
        rows.append(
            (
                str(rank) if outcome.complete else "-",
                outcome.engine,
                f"{elapsed:.2f} s",
                f"{ideal:.2f} s",
                f"{elapsed / ideal:.3f}" if ideal else "-",
                f"{outcome.whole}/{len(schedules)}",
            )
        )
    return format_table(
        ("rank", "engine", "measured", "ideal", "measured/ideal", "whole poems"), rows, right={0, 2, 3, 4, 5}
    )


def verdict(outcomes: Sequence[Outcome], schedules: Sequence[PoemSchedule]) -> str:
    """What the runs show, in one sentence that is true of the engines that ran."""
    complete = [o for o in outcomes if o.complete]
    lines = [f"Not ranked: {o.engine} did not get every whole poem." for o in outcomes if not o.complete]
    blocking = [o for o in complete if not ENGINES[o.engine].concurrent]
    concurrent = [o for o in complete if ENGINES[o.engine].concurrent]
    slowest_server = max((s.duration for s in schedules), default=0.0)
    if blocking and concurrent:
        slow = max(blocking, key=lambda o: o.summary.elapsed)
        fast = min(concurrent, key=lambda o: o.summary.elapsed)
        times = slow.summary.elapsed / fast.summary.elapsed
        lines.insert(0,
            f"{slow.engine} took {times:.2f} times as long as {fast.engine}: a client that waits on one "
            f"server at a time pays for every server's slowness in turn; one that waits on all of them "
            f"at once pays only for the slowest."
        )  # fmt: skip
    elif len(concurrent) > 1:
        spread = [o.summary.elapsed for o in concurrent]
        lines.insert(0,
            f"Every engine here waits on all the servers at once, so each took about as long as the "
            f"slowest server ({slowest_server:.2f} s): from {min(spread):.2f} s to {max(spread):.2f} s. "
            f"Add blocking (--engines blocking,...) to see what waiting on one server at a time costs."
        )  # fmt: skip
    elif len(complete) == 1 and concurrent:
        lines.insert(0, f"{concurrent[0].engine} waits on all the servers at once: it took about as long "
                        f"as the slowest server ({slowest_server:.2f} s), not the sum of them.")  # fmt: skip
    elif len(complete) == 1 and blocking:
        lines.insert(0, f"{blocking[0].engine} waits on one server at a time: it took the sum of their "
                        f"schedules ({sum(s.duration for s in schedules):.2f} s).")  # fmt: skip
    return "\n".join(lines)


def have_rich() -> bool:
    """Whether rich (the ``progress`` extra) is installed; if not, the hint says so once."""
    import importlib.util

    if importlib.util.find_spec("rich") is not None:
        return True
    from poetrynow.progress import HINT

    print(HINT.replace("printing plain lines instead", "a line per engine instead"), file=sys.stderr)
    return False


def on_a_terminal(out: TextIO) -> bool:
    """Whether ``out`` is a terminal, where a line can be redrawn in place."""
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def uvloop_set_aside(engines: Sequence[str]) -> str:
    """The engines a trace moves off uvloop, as words ("asyncio and lazy"); "" if none."""
    from poetrynow.clients.aio import loop_factory

    if loop_factory() is None:
        return ""
    moved = [engine for engine in engines if engine in ("asyncio", "actors", "lazy")]
    return " and ".join(filter(None, [", ".join(moved[:-1]), moved[-1]])) if moved else ""


#: Where ``make demo`` leaves its picture, unless told otherwise.
DEFAULT_PICTURE = "demo-timeline.png"


def panels_of(outcomes: Sequence[Outcome]):
    """A timeline panel per engine, in the order they ran."""
    from poetrynow.timeline import Panel, rows_of

    return [
        Panel(
            f"{o.engine}: {o.summary.elapsed:.2f} s, {ENGINES[o.engine].model}",
            rows_of(o.summary.events, o.summary.began),
        )
        for o in outcomes
    ]


def show_timeline(outcomes: Sequence[Outcome], out: TextIO, picture: str | None, hint: bool) -> None:
    """The runs as text after the table (the staircase against the overlap, in the terminal),
    then as a picture in ``picture``, or, with ``hint``, one line on how to get one."""
    from poetrynow.timeline import HINT, draw, terminal_width, text_timeline, wants_colour

    panels = panels_of(outcomes)
    print("\n" + text_timeline(panels, terminal_width(), wants_colour(out)), file=out)
    if picture:
        draw(panels, picture)
        print(f"\nThe timeline is in {picture}.", file=out)
    elif hint:
        print(f"\nNo picture file: {HINT}.", file=out)


def run_demo(
    delay: float = 0.1,
    engines: Sequence[str] = ("blocking", "select"),
    servers: Sequence[tuple[str, int]] = DEMO_SERVERS,
    out: TextIO | None = None,
    timeline: str | None = None,
    progress: bool = False,
    picture_hint: bool = False,
    trace: TraceFile | None = None,
    reads: bool = False,
) -> int:
    """Run the demo; ``timeline``: the picture file to write, if any (``picture_hint``: say
    in one line how to get one, as there is no matplotlib); ``trace``: where to write
    every engine's run as a process of its own (:mod:`poetrynow.tracing`); ``reads``: every
    read's line, as get-poetry prints them, instead of one progress line per engine
    (:mod:`poetrynow.demo_line`)."""
    out = out or sys.stdout
    running: list[RunningServer] = []
    try:
        for poem, num_bytes in servers:
            server = start_slow_server(poem, num_bytes, delay)
            running.append(server)
            print(f"Serving {poem} ({server.schedule.size} bytes, {num_bytes} every {delay:g} s) "
                  f"on port {server.address.port}.", file=out, flush=True)  # fmt: skip
        if trace is not None and (swapped := uvloop_set_aside(engines)):
            print(f"Traced, {swapped} run on asyncio's own loop, not uvloop: uvloop waits where a trace "
                  "cannot see it.", file=out, flush=True)  # fmt: skip
        addresses = [server.address for server in running]
        schedules = [server.schedule for server in running]
        poems = [load_poem(poem).data for poem, _ in servers]
        outcomes: list[Outcome] = []
        ports = " ".join(str(a.port) for a in addresses)
        # rich's live table of the tasks (--progress), where it can be shown: a terminal, and rich
        table = progress and out is sys.stdout and on_a_terminal(out) and have_rich()
        quiet_reads = not reads and not table
        if quiet_reads:
            print(f"\nEach engine runs get-poetry --engine ENGINE {ports} (--reads: every read)",
                  file=out, flush=True)  # fmt: skip
        width = max(len(engine) for engine in engines)
        for engine in engines:
            line: EngineLine | None = None
            if quiet_reads:
                total = sum(schedule.size for schedule in schedules)
                line = EngineLine(engine, total, len(addresses), out, live=on_a_terminal(out), width=width)
            else:
                print(f"\n== get-poetry --engine {engine} {ports}", file=out, flush=True)
            try:
                with open(os.devnull, "w") if quiet_reads else contextlib.nullcontext(out) as lines:
                    # The line per engine stands for the client's own lines, which go nowhere;
                    # a task's failure still has its line, on stderr.
                    summary = measure(
                        engine,
                        addresses,
                        lines,
                        progress=table,
                        trace=trace,
                        reads=not quiet_reads,
                        watch=line.event if line is not None else None,
                    )
                outcomes.append(Outcome(engine, summary, poems))
            except Interrupted as stop:
                stop.engine = engine  # type: ignore[attr-defined]
                raise
            finally:
                if line is not None:
                    line.end()
        for outcome in outcomes:
            for short in outcome.short():
                print(short, file=sys.stderr, flush=True)
        print("\n" + results_table(outcomes, schedules), file=out)
        words = verdict(outcomes, schedules)
        if words:
            # Wrapped to the terminal (at most 88 columns): a sentence of 200 characters is
            # one line to a file, and three rows of the screen the demo must fit.
            width = min(shutil.get_terminal_size((88, 24)).columns, 88)
            print("\n" + "\n".join(textwrap.fill(said, width) for said in words.splitlines()), file=out)
        show_timeline(outcomes, out, timeline, picture_hint)
        out.flush()
        return 0 if all(outcome.complete for outcome in outcomes) else 1
    finally:
        for server in running:
            server.stop()
