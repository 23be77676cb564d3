"""Events in, the articles' lines out: the only place clients' output is made.

Each engine family prints what its article shows. Part 2's blocking client
announces each task and its download time; its select client prints a line per
read, a line per closed connection and a byte count per task at the end. Both
close with ``Got N poems in H:MM:SS.ffffff``. ``--json`` swaps the text for one
JSON object per event. Failures always go to stderr, one line each.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

from poetrynow.events import (Event, Failed, Finished, PoemLine, Received, Restarted, Started,
                              TransformFailed, Transformed)

#: engine name -> line style; engines not listed (threads, asyncio) print the select style.
STYLES = {"blocking": "blocking", "twisted": "twisted", "actors": "actors", "lazy": "lazy"}


def elapsed(seconds: float) -> str:
    """``0:00:10.126361``, the way the articles print durations."""
    return str(timedelta(seconds=max(seconds, 0.0)))


def started_line(e: Started) -> str:
    return f"Task {e.task}: get poetry from: {e.address}"


def received_line(e: Received) -> str:
    return f"Task {e.task}: got {e.nbytes} bytes of poetry from {e.address}"


def downloaded_line(e: Finished, seconds: float) -> str:
    return f"Task {e.task}: got {len(e.poem)} bytes of poetry from {e.address} in {elapsed(seconds)}"


def finished_line(e: Finished) -> str:
    return f"Task {e.task} finished"


def size_line(e: Finished) -> str:
    return f"Task {e.task}: {len(e.poem)} bytes of poetry"


def failed_line(e: Failed) -> str:
    return f"Task {e.task}: failed to get poetry from {e.address}: {e.reason}"


def download_failed_line(e: Failed) -> str:
    """Client 7.0/8.0's words, with the task and address that the article's single line left out."""
    return f"The poem download failed: {e.reason} (task {e.task}, {e.address})"


def transform_failed_line(e: TransformFailed) -> str:
    return f"{e.transform.capitalize()} failed! Task {e.task} keeps the original poem: {e.reason}"


def restarted_line(e: Restarted) -> str:
    return f"Task {e.task} crashed ({e.reason}); restarting it ({e.attempt} of {e.limit})"


def total_line(poems: int, seconds: float) -> str:
    return f"Got {poems} poem{'s' if poems != 1 else ''} in {elapsed(seconds)}"


def event_json(e: Event, since: float) -> dict:
    """A JSON-ready dict for one event; times are seconds since the run began."""
    record = {
        "event": type(e).__name__.lower(),
        "task": e.task,
        "address": str(e.address),
        "t": round(e.t - since, 6),
    }
    if isinstance(e, Received):
        record["bytes"] = e.nbytes
    elif isinstance(e, Finished):
        record["bytes"] = len(e.poem)
        record["poem"] = e.text
    elif isinstance(e, Failed):
        record["reason"] = e.reason
        record["bytes"] = e.received
    elif isinstance(e, Transformed):
        record["transform"] = e.transform
    elif isinstance(e, TransformFailed):
        record["transform"] = e.transform
        record["reason"] = e.reason
    elif isinstance(e, PoemLine):
        record["line"] = e.text
    elif isinstance(e, Restarted):
        record["reason"] = e.reason
        record["attempt"] = e.attempt
    return record


@dataclass
class Summary:
    """What a run came to: the demo's table and the exit status are made from it."""

    elapsed: float
    finished: list[Finished] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # all of them, for a timeline
    began: float = 0.0

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


class Reporter:
    """Renders one run's events; call :meth:`begin`, then :meth:`event` per event, then :meth:`end`."""

    def __init__(self, style: str = "select", out: TextIO | None = None,
                 err: TextIO | None = None, as_json: bool = False, print_poems: bool = True,
                 chunk_lines: bool = True):
        self.style = style
        self.print_poems = print_poems
        # Off while a live progress display shows the chunks instead.
        self.chunk_lines = chunk_lines
        self._out, self._err = out, err
        self.as_json = as_json
        self.events: list[Event] = []
        self._began = 0.0
        self._task_start: dict[int, float] = {}

    # Looked up at each line, not kept: a live display swaps sys.stdout while it runs.
    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err if self._err is not None else sys.stderr

    def begin(self, t: float) -> None:
        self._began = t

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def event(self, e: Event) -> None:
        self.events.append(e)
        self._task_start.setdefault(e.task, e.t)
        if isinstance(e, Failed):
            line = download_failed_line(e) if self.style == "twisted" else failed_line(e)
            print(line, file=self.err, flush=True)
        elif isinstance(e, TransformFailed):
            print(transform_failed_line(e), file=self.err, flush=True)
        elif isinstance(e, Restarted):
            print(restarted_line(e), file=self.err, flush=True)
        if self.as_json:
            self._say(json.dumps(event_json(e, self._began), ensure_ascii=False))
            return
        if self.style == "blocking":
            if isinstance(e, Started):
                self._say(started_line(e))
            elif isinstance(e, Finished):
                self._say(downloaded_line(e, e.t - self._task_start[e.task]))
        elif isinstance(e, Received) and not self.chunk_lines:
            return
        elif self.style == "actors":
            # Part 20: a line per chunk; the main process prints the poems once all are down,
            # each with its download time (the article's third exercise).
            if isinstance(e, Received):
                self._say(received_line(e))
            elif isinstance(e, Finished):
                self._say(downloaded_line(e, e.t - self._task_start[e.task]))
                if self.print_poems:
                    self._say(e.text.rstrip("\n"))
        elif self.style == "lazy":
            # Part 21: a line per line of poetry, and each poem's lines as it is its turn.
            if isinstance(e, Received):
                self._say(received_line(e))
            elif isinstance(e, PoemLine) and self.print_poems:
                print(e.text, end="" if e.text.endswith("\n") else "\n", file=self.out, flush=True)
        else:
            if isinstance(e, Received):
                self._say(received_line(e))
            elif isinstance(e, Finished):
                self._say(finished_line(e))
                if self.style == "twisted" and self.print_poems:
                    self._say(e.text.rstrip("\n"))

    def end(self, t: float) -> Summary:
        summary = Summary(
            elapsed=t - self._began,
            finished=sorted((e for e in self.events if isinstance(e, Finished)), key=lambda e: e.task),
            failed=[e for e in self.events if isinstance(e, Failed)],
            events=self.events,
            began=self._began,
        )
        if self.as_json:
            self._say(json.dumps({
                "event": "summary",
                "poems": len(summary.finished),
                "failed": len(summary.failed),
                "elapsed": round(summary.elapsed, 6),
            }))
            return summary
        if self.style not in ("blocking", "actors", "lazy"):
            for e in summary.finished:
                self._say(size_line(e))
        self._say(total_line(len(summary.finished), summary.elapsed))
        return summary




def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int] = frozenset()) -> str:
    """Plain aligned columns; the column numbers in ``right`` align right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
