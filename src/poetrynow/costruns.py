"""What Part 20's cost demo measured, and what it says: each run, the table, the verdict.

Apart from :mod:`poetrynow.costdemo` (which starts the servers and runs the
clients), because a reader asking "why does the demo say the threads did not
help" wants the thresholds each sentence is chosen by, and nothing of the running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from poetrynow.report import Summary
from poetrynow.tables import format_table
from poetrynow.transforms import cummingsify

#: Clients at once, in each run.
CLIENTS = 4
#: The poem they fetch: it has capitals, so a transformed one can be told from the original.
POEM = "kettle"
TRANSFORM = "cummingsify"


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
