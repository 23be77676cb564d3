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
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from poetrynow.clients import EngineOptions
from poetrynow.costruns import CLIENTS, POEM, TRANSFORM, CostRun, cost_table, cost_verdict, ideal
from poetrynow.demo_servers import ServerProcess, start_server
from poetrynow.poems import load_poem
from poetrynow.report import Summary
from poetrynow.servers.transform.costs import KINDS, PLACES
from poetrynow.servers.transform.pool import usable_cores
from poetrynow.session import fetch
from poetrynow.stopping import Interrupted

if TYPE_CHECKING:
    from poetrynow.tracing import TraceFile

#: Where the demo leaves its picture, unless told otherwise.
DEFAULT_PICTURE = "transform-cost.png"
#: The word for what the picture's solid marks are, here.
WORK = "work: a client's thread handles a read, or the server's worker transforms"


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
