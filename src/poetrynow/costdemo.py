"""``poetrynow demo --transform-cost S``: Part 20's warning, measured at the transform server.

Part 20 opens by warning that blocking inside a Twisted program throws away
what the asynchronous model gives, and the series shows two ways out: a thread
(``deferToThread``) or another process. Here four clients at once fetch a poem
from a fast server and send it to a transform server whose every transform costs
S seconds, of a blocking wait or of CPU work, done in the reactor's thread, a
thread pool or a process pool. Each run is measured against its ideal: what four
transforms of S take if they overlap as far as this machine allows. A wait
overlaps fully (S); CPU work spreads over the cores, S × ceil(4 / cores).

The transform server logs its work (``--work-log``), and the timeline draws it in
lanes of its own under the clients' tasks.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from poetrynow.clients import EngineOptions
from poetrynow.demo import ServerProcess, start_server
from poetrynow.poems import load_poem
from poetrynow.report import Summary
from poetrynow.servers.transform.costs import KINDS, PLACES
from poetrynow.servers.transform.pool import usable_cores
from poetrynow.session import fetch
from poetrynow.stopping import Interrupted
from poetrynow.tables import format_table
from poetrynow.transforms import cummingsify

if TYPE_CHECKING:
    from poetrynow.tracing import TraceFile

#: Clients at once, in each run.
CLIENTS = 4
#: The poem they fetch: it has capitals, so a transformed one can be told from the original.
POEM = "kettle"
TRANSFORM = "cummingsify"
#: Where the demo leaves its picture, unless told otherwise.
DEFAULT_PICTURE = "transform-cost.png"
#: The word for what the picture's solid marks are, here.
WORK = "work: a client's thread handles a read, or the server's worker transforms"


def ideal(seconds: float, kind: str, clients: int = CLIENTS, cores: int = 1) -> float:
    """Four transforms of ``seconds`` each, overlapped as far as ``cores`` allow.

    A wait holds no core, so they all wait at once; CPU work needs a core each,
    and ``clients`` of them take ceil(clients / cores) turns.
    """
    return seconds if kind == "wait" else seconds * math.ceil(clients / cores)


@dataclass
class CostRun:
    """One placement and kind: the clients' run, and the server's work log."""

    place: str
    kind: str
    summary: Summary
    original: bytes
    work: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.place} {self.kind}"

    @property
    def expected(self) -> bytes:
        return cummingsify(self.original.decode("utf-8")).encode("utf-8")

    @property
    def transformed(self) -> int:
        """Poems that came back transformed, byte for byte."""
        return sum(e.poem == self.expected for e in self.summary.finished)

    @property
    def complete(self) -> bool:
        return self.transformed == CLIENTS

    def short(self) -> list[str]:
        """A line for each poem that did not come back transformed and whole."""
        lines = [f"{self.label}: task {e.task} got no poem: {e.reason}" for e in self.summary.failed]
        for e in self.summary.finished:
            if e.poem == self.original:
                lines.append(f"{self.label}: task {e.task}'s poem came back untransformed")
            elif e.poem != self.expected:
                whole = f"{len(e.poem)} of {len(self.expected)} bytes"
                lines.append(f"{self.label}: task {e.task}'s poem is not whole: {whole}")
        missing = CLIENTS - len(self.summary.finished) - len(self.summary.failed)
        if missing > 0:
            lines.append(f"{self.label}: {missing} task{'s' if missing != 1 else ''} never ended")
        return lines


def cost_table(runs: Sequence[CostRun], seconds: float, cores: int) -> str:
    """A row per run, in the order they ran."""
    rows = []
    for run in runs:
        best = ideal(seconds, run.kind, CLIENTS, cores)
        elapsed = run.summary.elapsed
        rows.append(
            (
                run.place,
                run.kind,
                f"{elapsed:.2f} s",
                f"{best:.2f} s",
                f"{elapsed / best:.2f}" if best else "-",
                f"{run.transformed}/{CLIENTS}",
            )
        )
    return format_table(
        ("placement", "kind", "measured", "ideal", "measured/ideal", "transformed"), rows, right={2, 3, 4, 5}
    )


def cost_verdict(runs: Sequence[CostRun], seconds: float, cores: int) -> str:
    """What the measured numbers show, said so that it stays true whatever they came to."""
    took = {(run.place, run.kind): run.summary.elapsed for run in runs if run.complete}
    lines = [f"Not judged: {run.label} did not get every poem back transformed." for run in runs]
    lines = [line for line, run in zip(lines, runs) if not run.complete]
    if seconds <= 0:
        if took:
            low, high = min(took.values()), max(took.values())
            lines.insert(
                0,
                f"With no cost there is nothing to overlap: the runs took from {low:.2f} s to {high:.2f} s.",
            )
        return "\n".join(lines)
    said = [
        sentence
        for sentence in (
            _loop_waits(took, seconds),
            _thread_waits(took, seconds),
            _thread_cpu(took),
            _process_cpu(took, cores),
            _process_waits(took, seconds),
        )
        if sentence
    ]
    if said:
        lines.insert(0, " ".join(said))
    return "\n".join(lines)


#: The measured times of the complete runs, by (placement, kind).
Took = dict[tuple[str, str], float]


def _loop_waits(took: Took, seconds: float) -> str | None:
    if (loop := took.get(("loop", "wait"))) is None:
        return None
    serial = CLIENTS * seconds
    said = f"In the reactor's thread, {CLIENTS} blocking waits of {seconds:g} s took {loop:.2f} s"
    if loop >= 0.85 * serial:
        return f"{said}: the loop served the clients one at a time, as Part 20 warns."
    return f"{said}, less than one after another ({serial:.2f} s)."


def _thread_waits(took: Took, seconds: float) -> str | None:
    if (threads := took.get(("thread", "wait"))) is None:
        return None
    loop = took.get(("loop", "wait"))
    than = f", {loop / threads:.1f} times as fast as the loop" if loop else ""
    if threads <= CLIENTS * seconds / 2:
        return f"A thread pool overlapped the waits: {threads:.2f} s{than}."
    return f"A thread pool did not overlap the waits here: {threads:.2f} s{than}."


def _thread_cpu(took: Took) -> str | None:
    loop, threads = took.get(("loop", "cpu")), took.get(("thread", "cpu"))
    if loop is None or threads is None:
        return None
    against = f"{threads:.2f} s against {loop:.2f} s in the loop"
    if threads >= 0.8 * loop:
        return (
            f"CPU work gained little from threads, {against}: only the thread that holds the GIL runs Python."
        )
    return f"CPU work took {against}: threads helped here, more than the GIL usually lets them."


def _process_cpu(took: Took, cores: int) -> str | None:
    processes = took.get(("process", "cpu"))
    others = [t for t in (took.get(("loop", "cpu")), took.get(("thread", "cpu"))) if t is not None]
    if processes is None or not others:
        return None
    best = min(others)
    if cores == 1:
        return f"With one core, processes could not spread the CPU work: {processes:.2f} s."
    used = min(cores, CLIENTS)  # one worker process per client, each on a core of its own at best
    if processes <= 0.8 * best:
        faster = best / processes
        return f"Processes spread it over the {used} cores: {processes:.2f} s, {faster:.1f} times as fast."
    return (
        f"Processes did not spread the CPU work here: {processes:.2f} s against {best:.2f} s ({used} cores)."
    )


def _process_waits(took: Took, seconds: float) -> str | None:
    if (processes := took.get(("process", "wait"))) is None:
        return None
    if processes <= CLIENTS * seconds / 2:
        return f"Processes overlapped the waits too: {processes:.2f} s."
    return f"Processes did not overlap the waits here: {processes:.2f} s."


def work_rows(run: CostRun, began: float, first_task: int):
    """The server's work as timeline rows: ``transform N`` in the order they began, a lane per worker."""
    from poetrynow.timeline import Row

    done = sorted(run.work, key=lambda w: w["began"])
    rows = [
        Row(
            first_task + n,
            f"transform {n + 1}",
            f"server {w['worker']}",
            w["began"] - began,
            w["ended"] - began,
            ((w["began"] - began, w["ended"] - began),),
            False,
            name=f"transform {n + 1}",
        )
        for n, w in enumerate(done)
    ]
    # Lanes in the order of their workers' numbers: thread 1, thread 2...
    return sorted(rows, key=lambda row: (len(row.lane), row.lane, row.start))


def panels_of(runs: Sequence[CostRun], seconds: float, cores: int):
    from poetrynow.timeline import Panel, rows_of

    panels = []
    for run in runs:
        began = run.summary.began
        best = ideal(seconds, run.kind, CLIENTS, cores)
        rows = rows_of(run.summary.events, began) + tuple(work_rows(run, began, CLIENTS + 1))
        panels.append(Panel(f"{run.label}: {run.summary.elapsed:.2f} s, ideal {best:.2f} s", rows))
    return panels


def show_timeline(runs, seconds: float, cores: int, out: TextIO, picture: str | None, hint: bool) -> None:
    """The runs as text, then as a picture in ``picture`` (or, with ``hint``, how to get one)."""
    from poetrynow.timeline import HINT, draw, terminal_width, text_timeline, wants_colour

    panels = panels_of(runs, seconds, cores)
    print("\n" + text_timeline(panels, terminal_width(), wants_colour(out)), file=out)
    if picture:
        draw(panels, picture, work=WORK)
        print(f"\nThe timeline is in {picture}.", file=out)
    elif hint:
        print(f"\nNo picture file: {HINT}.", file=out)


def measure(
    fast: ServerProcess,
    transform: ServerProcess,
    seconds: float,
    out: TextIO,
    trace: TraceFile | None = None,
    label: str = "",
) -> Summary:
    """Four clients at once: the poem from ``fast``, each sent to ``transform``.

    Of the engine's lines only the last, its total, is shown: the reads, a line a
    poem each, say nothing here. Failures still go to stderr, a line each.
    """
    options = EngineOptions(
        xform=transform.address,
        transform=TRANSFORM,
        timeout=30.0 + 2 * CLIENTS * seconds,  # a hang detector: the last client waits 4 S in the loop
    )
    lines = io.StringIO()
    summary = fetch(
        "twisted",
        [fast.address] * CLIENTS,
        options,
        out=lines,
        print_poems=False,
        keep_events=True,
        trace=trace,
        trace_name=f"{label}: {CLIENTS} clients (twisted)",
    )
    said = lines.getvalue().splitlines()
    if said:
        print(said[-1], file=out, flush=True)
    return summary


def one_run(
    place: str,
    kind: str,
    seconds: float,
    fast: ServerProcess,
    log: str,
    running: list,
    out: TextIO,
    trace: TraceFile | None = None,
) -> CostRun:
    """Start the transform server for ``place`` and ``kind`` (in ``running`` while it runs),
    measure four clients against it, stop it, and read its work log (into ``trace`` too)."""
    from poetrynow.servers.transform.worklog import read_work_log

    args = ["--cost", str(seconds), "--cost-kind", kind, "--cost-in", place]
    server = start_server("transformedpoetry", *args, "--workers", str(CLIENTS), "--work-log", log, "--quiet")
    running.append(server)
    port = server.address.port
    print(f"\n== {CLIENTS} clients, transformedpoetry {' '.join(args)} on port {port}", file=out, flush=True)
    try:
        summary = measure(fast, server, seconds, out, trace, f"{place} {kind}")
    except Interrupted as stop:
        stop.engine = f"twisted, against --cost-in {place} --cost-kind {kind}"  # type: ignore[attr-defined]
        raise
    server.stop()  # its log is whole: a line is flushed as each transform is done
    running.remove(server)
    run = CostRun(place, kind, summary, load_poem(POEM).data, read_work_log(log))
    if trace is not None:
        trace_work(trace, run)
    return run


def trace_work(trace: TraceFile, run: CostRun) -> None:
    """The transform server's work as a process of the trace, a track per worker, under its clients.

    Its times are the server's ``time.monotonic()``: the system's one clock on Linux
    and macOS, so they lie on the clients' time axis.
    """
    import time

    server = trace.run(
        f"{run.label}: transformedpoetry --cost-in {run.place} --cost-kind {run.kind}", time.monotonic
    )
    for work in sorted(run.work, key=lambda w: w["began"]):
        args = {"transform": work["transform"], "bytes": work["bytes"], "pid": work["pid"]}
        server.span(f"server {work['worker']}", work["transform"], "work", work["began"], work["ended"], args)
    server.close()


def run_cost_demo(
    seconds: float,
    out: TextIO | None = None,
    timeline: str | None = None,
    picture_hint: bool = False,
    trace: TraceFile | None = None,
) -> int:
    """Run each placement with each kind of cost; 0 if every poem came back transformed.

    ``trace``: each run's clients, then its server's work, as processes of their own."""
    out = out or sys.stdout
    running: list[ServerProcess] = []
    logs = tempfile.mkdtemp(prefix="poetrynow-cost-")
    try:
        fast = start_server("fastpoetry", POEM, "--quiet")
        running.append(fast)
        print(f"Serving {POEM} on port {fast.address.port}, all at once.", file=out, flush=True)
        runs = [
            one_run(
                place, kind, seconds, fast, os.path.join(logs, f"{place}-{kind}.jsonl"), running, out, trace
            )
            for place in PLACES
            for kind in KINDS
        ]
        for run in runs:
            for line in run.short():
                print(line, file=sys.stderr, flush=True)
        n = usable_cores()
        print("\n" + cost_table(runs, seconds, n), file=out)
        words = cost_verdict(runs, seconds, n)
        if words:
            print("\n" + words, file=out)
        show_timeline(runs, seconds, n, out, timeline, picture_hint)
        out.flush()
        return 0 if all(run.complete for run in runs) else 1
    finally:
        for server in running:
            server.stop()
        shutil.rmtree(logs, ignore_errors=True)
