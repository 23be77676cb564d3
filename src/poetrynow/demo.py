"""``poetrynow demo``: Part 2's experiment, run for real on the bundled poems.

Three blocking slow servers (the long poem at 30 bytes a chunk, the short ones
at 10, so they all take about as long), then each engine downloads all three
poems in turn. The table compares each engine's measured total with the best it
could do: the sum of the schedules for a client that waits on one server at a
time, the longest schedule for one that waits on all of them at once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from poetrynow.address import Address
from poetrynow.clients import ENGINES, EngineOptions
from poetrynow.poems import load_poem
from poetrynow.report import Summary
from poetrynow.schedule import PoemSchedule, ideal_total
from poetrynow.session import fetch
from poetrynow.stopping import Interrupted
from poetrynow.tables import format_table

#: The article's three servers: (poem, bytes per chunk).
DEMO_SERVERS = [("lighthouse", 30), ("kettle", 10), ("relay", 10)]


@dataclass
class RunningServer:
    """A ``slowpoetry`` subprocess and what it promised to do."""

    process: subprocess.Popen
    address: Address
    schedule: PoemSchedule

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


def start_slow_server(poem: str, num_bytes: int, delay: float, concurrent: bool = False) -> RunningServer:
    """Start ``slowpoetry`` on a free port and read the port from its first line."""
    command = [
        sys.executable,
        "-m",
        "poetrynow.cli.slowpoetry",
        poem,
        "--quiet",
        "--num-bytes",
        str(num_bytes),
        "--delay",
        str(delay),
    ]
    if concurrent:
        command.append("--concurrent")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    try:
        port = int(first.rsplit(" ", 1)[1].rstrip(".\n"))
    except (IndexError, ValueError):
        process.kill()
        process.wait()
        raise RuntimeError(f"slowpoetry did not start: {process.stderr.read().strip() or first!r}") from None
    size = len(load_poem(poem).data)
    return RunningServer(process, Address("127.0.0.1", port), PoemSchedule(size, num_bytes, delay))


def measure(
    engine: str, addresses: Sequence[Address], out: TextIO, err: TextIO | None = None, progress: bool = False
) -> Summary:
    """Run one engine against the servers, its lines going to ``out``."""
    # The terminal's stdout is looked up at each line, so a live display can redirect it.
    lines = None if out is sys.stdout else out
    return fetch(engine, addresses, EngineOptions(), out=lines, err=err, print_poems=False, progress=progress)


def results_table(results: dict[str, Summary], schedules: Sequence[PoemSchedule]) -> str:
    """One row per engine, fastest first, ranked by measured time."""
    rows = []
    ranked = sorted(results.items(), key=lambda item: (len(item[1].failed), item[1].elapsed))
    for rank, (engine, summary) in enumerate(ranked, 1):
        ideal = ideal_total(schedules, concurrent=ENGINES[engine].concurrent)
        ratio = f"{summary.elapsed / ideal:.3f}" if ideal else "-"
        rows.append(
            (
                str(rank),
                engine,
                f"{summary.elapsed:.2f} s",
                f"{ideal:.2f} s",
                ratio,
                f"{len(summary.finished)}/{len(schedules)}",
            )
        )
    return format_table(
        ("rank", "engine", "measured", "ideal", "measured/ideal", "poems"), rows, right={0, 2, 3, 4, 5}
    )


def verdict(results: dict[str, Summary]) -> str:
    if len(results) < 2:
        return ""
    slowest = max(results, key=lambda name: results[name].elapsed)
    fastest = min(results, key=lambda name: results[name].elapsed)
    if results[fastest].elapsed <= 0:
        return ""
    times = results[slowest].elapsed / results[fastest].elapsed
    return (
        f"{slowest} took {times:.2f} times as long as {fastest}: a client that waits on one "
        f"server at a time pays for every server's slowness in turn; one that waits on all "
        f"of them at once pays only for the slowest."
    )


def draw_panels(results: dict[str, Summary], path: str) -> None:
    """A panel per engine, in the order they ran, on one time axis."""
    from poetrynow.timeline import Panel, draw, rows_of

    draw(
        [
            Panel(f"{engine}: {summary.elapsed:.2f} s", rows_of(summary.events, summary.began))
            for engine, summary in results.items()
        ],
        path,
    )


def run_demo(
    delay: float = 0.1,
    engines: Sequence[str] = ("blocking", "select"),
    servers: Sequence[tuple[str, int]] = DEMO_SERVERS,
    out: TextIO | None = None,
    timeline: str | None = None,
    progress: bool = False,
) -> int:
    out = out or sys.stdout
    running: list[RunningServer] = []
    try:
        for poem, num_bytes in servers:
            server = start_slow_server(poem, num_bytes, delay)
            running.append(server)
            print(
                f"Serving {poem} ({server.schedule.size} bytes, {num_bytes} every {delay:g} s) "
                f"on port {server.address.port}.",
                file=out,
                flush=True,
            )
        addresses = [server.address for server in running]
        schedules = [server.schedule for server in running]
        results: dict[str, Summary] = {}
        for engine in engines:
            print(
                f"\n== get-poetry --engine {engine} " + " ".join(str(a.port) for a in addresses),
                file=out,
                flush=True,
            )
            try:
                results[engine] = measure(engine, addresses, out, progress=progress and out is sys.stdout)
            except Interrupted as stop:
                stop.engine = engine  # type: ignore[attr-defined]
                raise
        print("\n" + results_table(results, schedules), file=out)
        line = verdict(results)
        if line:
            print("\n" + line, file=out)
        if timeline:
            draw_panels(results, timeline)
            print(f"\nThe timeline is in {timeline}.", file=out)
        out.flush()
        return 1 if any(summary.failed for summary in results.values()) else 0
    finally:
        for server in running:
            server.stop()
