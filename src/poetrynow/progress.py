"""``--progress``: a live table of the tasks while they run, erased when the run ends.

It is one more consumer of the engines' events. It needs a terminal and rich (the
``progress`` extra): :func:`live_progress` gives ``None`` when stdout is a pipe
or a file, so the command prints its usual lines, and says in one line when rich
is missing. While it is live, the reporter leaves out its per-chunk lines (the
table shows them); every other line is printed above the table.

The table is redrawn from the sink, at most ten times a second, never from a
thread of its own, so it never reads a task's state while an engine writes it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from poetrynow.events import Connected, Event, Failed, Finished, PoemLine, Received, Started

HINT = "--progress needs rich: pip install 'poetrynow[progress]'; printing plain lines instead"
REFRESH = 0.1  # seconds between redraws
MAX_ROWS = 16


@dataclass
class TaskState:
    address: str
    state: str = "connecting"
    nbytes: int = 0
    first_byte: float | None = None
    ended: float | None = None

    def rate(self, now: float) -> float:
        """Bytes per second since the first byte (until the end, once ended)."""
        if self.first_byte is None:
            return 0.0
        span = (self.ended or now) - self.first_byte
        return self.nbytes / span if span > 0 else 0.0


@dataclass
class Tally:
    """Every task's state, from the events."""

    tasks: dict[int, TaskState] = field(default_factory=dict)

    def update(self, e: Event) -> None:
        if isinstance(e, PoemLine):
            return
        task = self.tasks.setdefault(e.task, TaskState(str(e.address)))
        if isinstance(e, Started):
            task.state = "connecting"
        elif isinstance(e, Connected):
            task.state = "waiting"
        elif isinstance(e, Received):
            task.state = "receiving"
            task.nbytes += e.nbytes
            task.first_byte = e.t if task.first_byte is None else task.first_byte
        elif isinstance(e, Finished):
            task.state, task.ended = "done", e.t
        elif isinstance(e, Failed):
            task.state, task.ended = "failed", e.t

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        return counts


def render(tally: Tally, now: float, max_rows: int = MAX_ROWS):
    """A rich Table: the tasks still running first, then the ended ones; then a total line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in [
        ("task", "right"),
        ("server", "left"),
        ("state", "left"),
        ("bytes", "right"),
        ("rate", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    order = sorted(tally.tasks.items(), key=lambda item: (item[1].ended is not None, item[0]))
    style = {"done": "green", "failed": "red", "receiving": "cyan"}
    for number, task in order[:max_rows]:
        table.add_row(
            str(number),
            task.address,
            f"[{style.get(task.state, 'yellow')}]{task.state}",
            f"{task.nbytes:,}",
            f"{task.rate(now):,.0f} B/s",
        )
    counts = tally.counts()
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    hidden = len(order) - max_rows
    total = f"{len(order)} tasks: {summary}" + (f" ({hidden} more not shown)" if hidden > 0 else "")
    return Group(table, Text(total, style="dim"))


class LiveProgress:
    """The live display; use as a context manager and give it every event."""

    def __init__(self, console=None, clock=time.monotonic, max_rows: int = MAX_ROWS):
        from rich.live import Live

        self.tally = Tally()
        self.clock = clock
        self.max_rows = max_rows
        self._drawn = float("-inf")
        self.live = Live(
            render(self.tally, clock(), max_rows),
            console=console,
            transient=True,
            auto_refresh=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def event(self, e: Event) -> None:
        self.tally.update(e)
        now = self.clock()
        if now - self._drawn >= REFRESH or isinstance(e, (Finished, Failed)):
            self._drawn = now
            self.live.update(render(self.tally, now, self.max_rows), refresh=True)


def live_progress(wanted: bool, stream=None) -> LiveProgress | None:
    """A LiveProgress when it was asked for and can be shown; else None (plain lines)."""
    stream = stream or sys.stdout
    if not wanted or not stream.isatty():
        return None
    try:
        import rich  # noqa: F401
    except ImportError:
        print(HINT, file=sys.stderr, flush=True)
        return None
    return LiveProgress()
