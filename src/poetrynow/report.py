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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
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


def transform_failed_line(e: TransformFailed) -> str:
    return f"{e.transform.capitalize()} failed! Task {e.task} keeps the original poem: {e.reason}"


def restarted_line(e: Restarted) -> str:
    return f"Task {e.task} crashed ({e.reason}); restarting it ({e.attempt} of {e.limit})"


def total_line(poems: int, seconds: float) -> str:
    return f"Got {poems} poem{'s' if poems != 1 else ''} in {elapsed(seconds)}"


def event_json(e: Event, since: float) -> dict:
    """A JSON-ready dict for one event; times are seconds since the run began."""
    record: dict = {"event": e.kind, "task": e.task, "address": str(e.address), "t": round(e.t - since, 6)}
    if e.thread:
        record["thread"] = e.thread
    if e.process:
        record["process"] = e.process
    if e.began is not None:
        record["work"] = round(e.t - e.began, 6)  # seconds the engine spent handling it
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


class SoonFlusher:
    """Flushes a stream from a daemon thread soon after it is written to, not after every line."""

    def __init__(self, delay: float = 0.05):
        self.delay = delay
        self.pending: TextIO | None = None
        self.stopped = False
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def wrote(self, stream: TextIO) -> None:
        if self.pending is None:
            self.pending = stream
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="poetrynow-flush", daemon=True)
                self.thread.start()
            self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            if self.stopped:
                return
            time.sleep(self.delay)
            self.wake.clear()  # before taking the stream: a write after this sets it again
            stream, self.pending = self.pending, None
            if stream is not None:
                stream.flush()

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()  # the thread ends without waiting; what it would flush is flushed here
        stream, self.pending = self.pending, None
        if stream is not None:
            stream.flush()


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
    ):
        self.print_poems = print_poems
        # Off while a live progress display shows the chunks instead.
        self.chunk_lines = chunk_lines
        self._out, self._err = out, err
        self.events: list[Event] = []
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
        """Write to stdout; flushed at once on a terminal, within a moment otherwise.

        Ten thousand downloads print a hundred thousand lines, and a flush (a
        write to the file or pipe) per line cost more than making the line. To
        a file or a pipe the lines go in batches, flushed by :class:`SoonFlusher`
        at most a twentieth of a second after they were written.
        """
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
        self.events.append(e)
        self.task_start.setdefault(e.task, e.t)
        kind = e.kind
        if kind == "received" and not self.chunk_lines:
            return
        handler = self._handlers.get(kind)
        if handler is None:  # looked up once per kind, not once per event
            handler = self._handlers[kind] = getattr(self, "on_" + kind)
        handler(e)

    def end(self, t: float) -> Summary:
        summary = Summary(
            elapsed=t - self.began,
            finished=sorted((e for e in self.events if isinstance(e, Finished)), key=lambda e: e.task),
            failed=[e for e in self.events if isinstance(e, Failed)],
            events=self.events,
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


class BlockingStyle(Reporter):
    """Part 2's blocking client: each task announced, then its size and download time."""

    def on_started(self, e: Started) -> None:
        self.say(started_line(e))

    def on_finished(self, e: Finished) -> None:
        self.say(downloaded_line(e, self.since_start(e)))


class SelectStyle(Reporter):
    """Part 2's select client: a line per read, a line per close, the sizes at the end."""

    def on_received(self, e: Received) -> None:
        self.say(received_line(e))

    def on_finished(self, e: Finished) -> None:
        self.say(finished_line(e))

    def closing(self, summary: Summary) -> None:
        for e in summary.finished:
            self.say(size_line(e))
        super().closing(summary)


class TwistedStyle(SelectStyle):
    """Client 7.0/8.0: the select lines, each poem printed as it is done."""

    def on_finished(self, e: Finished) -> None:
        super().on_finished(e)
        if self.print_poems:
            self.say(e.text.rstrip("\n"))


class ActorsStyle(Reporter):
    """Part 20: a line per chunk; each poem with its download time, as the main process gets it."""

    def on_received(self, e: Received) -> None:
        self.say(received_line(e))

    def on_finished(self, e: Finished) -> None:
        self.say(downloaded_line(e, self.since_start(e)))
        if self.print_poems:
            self.say(e.text.rstrip("\n"))


class LazyStyle(Reporter):
    """Part 21: a line per line of poetry, and each poem's lines when it is its turn."""

    def on_received(self, e: Received) -> None:
        self.say(received_line(e))

    def on_poemline(self, e: PoemLine) -> None:
        if self.print_poems:
            self.write(e.text if e.text.endswith("\n") else e.text + "\n")


class JsonStyle(Reporter):
    """``--json``: one object per event on stdout (failures still a line on stderr), then a summary."""

    def event(self, e: Event) -> None:
        super().event(e)
        self.say(json.dumps(event_json(e, self.began), ensure_ascii=False))

    def closing(self, summary: Summary) -> None:
        self.say(
            json.dumps(
                {
                    "event": "summary",
                    "poems": len(summary.finished),
                    "failed": len(summary.failed),
                    "bytes": sum(len(e.poem) for e in summary.finished),
                    "elapsed": round(summary.elapsed, 6),
                    **self.about,
                }
            )
        )


#: Output style name (a row's ``style`` in the engine table) -> its reporter.
STYLES: dict[str, type[Reporter]] = {
    "blocking": BlockingStyle,
    "select": SelectStyle,
    "twisted": TwistedStyle,
    "actors": ActorsStyle,
    "lazy": LazyStyle,
    "json": JsonStyle,
}


def reporter_for(style: str, as_json: bool = False, **settings) -> Reporter:
    """The reporter of an output style; ``--json`` replaces any style."""
    return STYLES["json" if as_json else style](**settings)
