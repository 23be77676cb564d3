"""What every output style shares: the event dispatch, stdout and stderr, and the run's Summary.

The reporter keeps the time each task's first event came, so that a style can
say how long a task took the way Part 2's blocking client timed it: from
``Started`` to ``Finished``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from poetrynow.events import (
    Connected,
    Event,
    Failed,
    Finished,
    PoemLine,
    Received,
    Restarted,
    Started,
    Transformed,
    TransformFailed,
)
from poetrynow.report.flushing import SoonFlusher
from poetrynow.report.kept import KeptEvents
from poetrynow.report.lines import failed_line, restarted_line, total_line, transform_failed_line


@dataclass
class Summary:
    """What a run came to: the demo's table and the exit status are made from it."""

    elapsed: float
    finished: list[Finished] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # for a timeline, when one was asked for
    began: float = 0.0

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


class Reporter:
    """Renders one run's events; call :meth:`begin`, then :meth:`event` per event, then :meth:`end`.

    Each event goes to the method ``on_<kind>`` of the output style (a subclass);
    what a style does not print, it does not mention. Failures go to stderr, one
    line each, in every style.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        print_poems: bool = True,
        chunk_lines: bool = True,
        keep_events: bool = False,
    ):
        self.print_poems = print_poems
        # Off while a live progress display shows the chunks instead.
        self.chunk_lines = chunk_lines
        self._out, self._err = out, err
        # What the run's summary needs: the poems and the failures. The other events only
        # for a timeline, their reads merged where a picture could not tell them apart.
        self.finished: list[Finished] = []
        self.failed: list[Failed] = []
        self.kept: KeptEvents | None = KeptEvents() if keep_events else None
        #: What ``--json``'s summary says of the run besides its counts: the engine, its event loop.
        self.about: dict[str, str] = {}
        self.began = 0.0
        self.task_start: dict[int, float] = {}
        self.flusher: SoonFlusher | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {}

    # Looked up at each line, not kept: a live display swaps sys.stdout while it runs.
    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err if self._err is not None else sys.stderr

    def say(self, line: str) -> None:
        self.write(line + "\n")

    def write(self, text: str) -> None:
        """Write to stdout; flushed at once on a terminal, soon after otherwise (see :mod:`.flushing`)."""
        out = self.out
        out.write(text)
        if self.flusher is None:
            out.flush()
        else:
            self.flusher.wrote(out)

    def complain(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    def begin(self, t: float) -> None:
        self.began = t
        isatty = getattr(self.out, "isatty", None)
        if self.flusher is None and not (isatty is not None and isatty()):
            self.flusher = SoonFlusher()

    def stop_flushing(self) -> None:
        """Flush what is written, and stop the flusher (after the closing lines, or a signal)."""
        flusher, self.flusher = self.flusher, None
        if flusher is not None:
            flusher.stop()

    def event(self, e: Event) -> None:
        kind = e.kind
        if kind == "finished":
            self.finished.append(e)  # type: ignore[arg-type]
        elif kind == "failed":
            self.failed.append(e)  # type: ignore[arg-type]
        if self.kept is not None:
            self.kept.add(e)
        if e.task not in self.task_start:
            self.task_start[e.task] = e.t
        if kind == "received" and not self.chunk_lines:
            return
        handler = self._handlers.get(kind)
        if handler is None:  # looked up once per kind, not once per event
            handler = self._handlers[kind] = getattr(self, "on_" + kind)
        handler(e)

    def end(self, t: float) -> Summary:
        summary = Summary(
            elapsed=t - self.began,
            finished=sorted(self.finished, key=lambda e: e.task),
            failed=list(self.failed),
            events=self.kept.events() if self.kept is not None else [],
            began=self.began,
        )
        self.closing(summary)
        self.stop_flushing()
        return summary

    def since_start(self, e: Event) -> float:
        return e.t - self.task_start[e.task]

    # What every style does; a style overrides the events it prints.
    def on_started(self, e: Started) -> None: ...
    def on_connected(self, e: Connected) -> None: ...
    def on_received(self, e: Received) -> None: ...
    def on_finished(self, e: Finished) -> None: ...
    def on_transformed(self, e: Transformed) -> None: ...
    def on_poemline(self, e: PoemLine) -> None: ...

    def on_failed(self, e: Failed) -> None:
        self.complain(failed_line(e))

    def on_transformfailed(self, e: TransformFailed) -> None:
        self.complain(transform_failed_line(e))

    def on_restarted(self, e: Restarted) -> None:
        self.complain(restarted_line(e))

    def closing(self, summary: Summary) -> None:
        self.say(total_line(len(summary.finished), summary.elapsed))
