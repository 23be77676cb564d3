"""Part 1's three figures, drawn from measured runs: who worked, on which thread, when.

Every event says which thread handled it and, for a read, when the handling
began (``Event.thread``, ``Event.began``). From those, a panel per engine shows
a lane per thread:

- the blocking engine has one thread, and its tasks follow one another on it:
  Part 1's figure 1, the synchronous model;
- the threads engine has a lane per task, their work overlapping in time:
  figure 2, tasks interleaved by the operating system;
- select, Twisted, asyncio, the actors and the lazy streams have one lane, on
  which the tasks' short bursts of work alternate, idle in between: figure 3,
  tasks interleaved by hand, in one thread.

Work (the engine handling a read) is a solid mark in the task's colour; waiting
is a pale band, in the task's colour when the thread waits on that task's server
alone, grey when it waits on several at once. The legend says so.

:func:`draw` writes the picture with matplotlib (an optional extra; :func:`require`
says how to get it, in one line). :func:`text_timeline` draws the same runs in
the terminal, a row per task, with Unicode blocks (and a colour per task when
the terminal has colours).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from poetrynow.events import Event, Failed, Finished, Received, Started

FORMATS = {".png": "png", ".svg": "svg"}
HINT = "the timeline picture needs matplotlib: pip install 'poetrynow[plot]' (or 'poetrynow[all]')"
MAIN = "main thread"

#: Task colours: matplotlib's, and the terminal's (ANSI) nearest to them.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
ANSI = ("34", "33", "32", "35", "31", "95", "36", "93")
FAILED_COLOUR = "#d62728"
SEVERAL = "#b0b0b0"  # waiting on several servers at once

WORK, WAIT, FAIL, NOTHING = "█", "─", "✗", " "


class TimelineError(Exception):
    """The picture cannot be drawn: no matplotlib, or a file name it cannot write."""


@dataclass(frozen=True)
class Row:
    """One task, in seconds since its panel's start."""

    task: int
    label: str
    lane: str  # the thread that did its work
    start: float
    end: float | None
    work: tuple[tuple[float, float], ...]  # (began, ended) of each read's handling
    failed: bool

    @property
    def chunks(self) -> tuple[float, ...]:
        """When each read was done with."""
        return tuple(end for _, end in self.work)


@dataclass(frozen=True)
class Panel:
    title: str
    rows: tuple[Row, ...]

    @property
    def lanes(self) -> tuple[str, ...]:
        """The threads that did the reading, the lane of task 1 first."""
        seen: dict[str, None] = {}
        for row in self.rows:  # in task order
            seen.setdefault(row.lane)
        return tuple(seen)

    @property
    def last(self) -> float:
        times = [0.0]
        for row in self.rows:
            times.append(row.end if row.end is not None else row.start)
            times.extend(end for _, end in row.work)
        return max(times)


def lane_names(events: Sequence[Event]) -> dict[str, str]:
    """Thread name -> lane label: ``main thread``, and ``thread 1``, ``thread 2``... in task order.

    A task's thread is the one that did its reading (or, before any read, the one
    that started it); the other threads are numbered by the first task each did.
    """
    threads: dict[int, str] = {}
    for e in events:
        if e.thread and (isinstance(e, Received) or e.task not in threads):
            threads[e.task] = e.thread
    names: dict[str, str] = {}
    others = 0
    for _, thread in sorted(threads.items()):
        if thread not in names:
            if thread == "MainThread":
                names[thread] = MAIN
            else:
                others += 1
                names[thread] = f"thread {others}"
    return names


def rows_of(events: Sequence[Event], began: float) -> tuple[Row, ...]:
    """Turn one run's events into rows, task by task, times relative to ``began``."""
    lanes = lane_names(events)
    tasks: dict[int, dict] = {}
    for e in events:
        task = tasks.setdefault(
            e.task,
            {"label": f"Task {e.task}  {e.address}", "start": None, "end": None, "work": [], "failed": False,
             "lane": None},
        )  # fmt: skip
        t = e.t - began
        if isinstance(e, Started):
            task["start"] = t
        elif isinstance(e, Received):
            task["work"].append(((e.began if e.began is not None else e.t) - began, t))
            task["lane"] = lanes.get(e.thread, MAIN)  # where the reading was done
        elif isinstance(e, Finished):
            task["end"] = t
        elif isinstance(e, Failed):
            task["end"], task["failed"] = t, True
        if task["lane"] is None and e.thread in lanes:
            task["lane"] = lanes[e.thread]
    return tuple(
        Row(
            number,
            v["label"],
            v["lane"] or MAIN,
            v["start"] if v["start"] is not None else 0.0,
            v["end"],
            tuple(v["work"]),
            v["failed"],
        )
        for number, v in sorted(tasks.items())
    )


def waiting(rows: Sequence[Row], last: float) -> list[tuple[float, float, Row | None]]:
    """A lane's waiting, as (from, to, whose): one task's row while it alone is open, None for several."""
    edges = sorted({t for row in rows for t in (row.start, row.end if row.end is not None else last)})
    spans: list[tuple[float, float, Row | None]] = []
    for left, right in pairwise(edges):
        open_rows = [r for r in rows if r.start <= left and (r.end if r.end is not None else last) >= right]
        if open_rows:
            spans.append((left, right, open_rows[0] if len(open_rows) == 1 else None))
    return spans


def colour(task: int) -> str:
    return COLOURS[(task - 1) % len(COLOURS)]


def format_for(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TimelineError(f"--timeline writes .png or .svg, not {suffix or 'a file without a suffix'!r}")
    return FORMATS[suffix]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require(path: str) -> str:
    """The file format; or fail early, in one line, when the picture could not be drawn."""
    kind = format_for(path)
    if not have_matplotlib():
        raise TimelineError(HINT)
    return kind


def draw(panels: Sequence[Panel], path: str) -> None:
    """Write the panels, one above the other on a shared time axis, to ``path``."""
    kind = require(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    # Keep text as text in SVG: labels stay searchable, selectable and testable.
    plt.rcParams["svg.fonttype"] = "none"
    heights = [max(len(panel.lanes), 1) for panel in panels]
    figure, axes = plt.subplots(
        len(panels),
        1,
        sharex=True,
        squeeze=False,
        figsize=(10, 2.2 + 0.5 * sum(heights) + 0.55 * len(panels)),
        gridspec_kw={"height_ratios": heights},
    )
    last = max([0.1] + [panel.last for panel in panels])
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        _draw_panel(ax, panel, last)
    axes[-1, 0].set_xlabel("seconds since the engine started")
    legend = [
        Patch(color=COLOURS[0], label="work: the thread handles a read (a line, in its task's colour)"),
        Patch(color=COLOURS[0], alpha=0.25, label="waiting on that task's server"),
        Patch(color=SEVERAL, alpha=0.5, label="waiting on several servers at once"),
    ]
    # A colour per task: named, when there are few enough tasks to tell apart.
    tasks = {row.task: row.label for panel in panels for row in panel.rows}
    if len(tasks) <= len(COLOURS):
        legend += [Patch(color=colour(task), label=label) for task, label in sorted(tasks.items())]
    rows = -(-len(legend) // 3)
    figure.legend(handles=legend, loc="upper center", ncol=3, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - (0.12 + 0.2 * rows) / figure.get_figheight()))
    try:
        figure.savefig(path, format=kind, dpi=110)
    except OSError as problem:
        raise TimelineError(f"cannot write {path}: {problem.strerror or problem}") from None
    finally:
        plt.close(figure)


def _draw_panel(ax, panel: Panel, last: float) -> None:
    lanes = panel.lanes
    ax.set_title(panel.title, loc="left", fontsize=10)
    visible = last * 0.002  # about a pixel: a read's work, which takes microseconds, is a line
    for y, lane in enumerate(lanes):
        rows = [row for row in panel.rows if row.lane == lane]
        spans = waiting(rows, last)
        for left, right, whose in spans:
            tint, alpha = (colour(whose.task), 0.25) if whose is not None else (SEVERAL, 0.5)
            ax.barh(y, right - left, left=left, height=0.6, color=tint, alpha=alpha, linewidth=0)
        # One thread serving several tasks at once (figure 3): each task's work gets a
        # strip of the lane, so bursts a millisecond apart can be told apart by colour.
        strips = len(rows) if any(whose is None for _, _, whose in spans) else 1
        for k, row in enumerate(rows):
            top = y - 0.3 + (k % strips) * 0.6 / strips
            height = 0.6 / strips
            long = [(begin, end - begin) for begin, end in row.work if end - begin >= visible]
            if long:
                ax.broken_barh(long, (top, height), facecolors=colour(row.task))
            short = [begin for begin, end in row.work if end - begin < visible]
            if short:
                ax.vlines(short, top, top + height, colors=colour(row.task), linewidth=1.0)
            if row.failed and row.end is not None:
                ax.plot([row.end], [y], marker="x", color=FAILED_COLOUR, markersize=9, markeredgewidth=2)
    ax.set_yticks(range(len(lanes)), list(lanes), fontsize=8)
    ax.set_ylim(max(len(lanes), 1) - 0.5, -0.5)
    ax.set_xlim(0, last * 1.02)
    ax.grid(axis="x", alpha=0.3)


def wants_colour(out) -> bool:
    """Colours on a terminal that has them, unless NO_COLOR says otherwise."""
    import os

    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ


def terminal_width() -> int:
    """Cells for the time axis: the terminal's width, less the labels."""
    import shutil

    return max(20, min(100, shutil.get_terminal_size((100, 24)).columns - 30))


def text_timeline(panels: Sequence[Panel], width: int = 60, colours: bool = False) -> str:
    """The panels in the terminal: a row per task, ``width`` cells across a shared time axis.

    A cell is ``█`` when the task's thread handled a read in it, ``─`` while
    the task waited on its server, ``✗`` where it failed. With ``colours``,
    each task's cells are in its own colour.
    """
    last = max([0.1] + [panel.last for panel in panels])
    cell = last / width
    label_width = max([len(_label(row)) for panel in panels for row in panel.rows] + [0])
    lines: list[str] = []
    for panel in panels:
        threads = len(panel.lanes)
        lines.append(f"{panel.title} ({threads} thread{'s' if threads != 1 else ''})")
        for row in panel.rows:
            cells = _cells(row, width, cell, last)
            if colours:
                cells = f"\033[{ANSI[(row.task - 1) % len(ANSI)]}m{cells}\033[0m"
            lines.append(f"  {_label(row):<{label_width}} │{cells}│".rstrip())
    end = f"{last:.1f} s"
    lines.append(f"  {'':<{label_width}} └{'─' * width}┘")
    lines.append(f"  {'':<{label_width}}  0 s{end:>{width - 3}}")
    return "\n".join(lines)


def _label(row: Row) -> str:
    return f"task {row.task}  {row.lane}"


def _cells(row: Row, width: int, cell: float, last: float) -> str:
    end = row.end if row.end is not None else last
    out = []
    worked = {min(int(done / cell), width - 1) for _, done in row.work}
    for i in range(width):
        left, right = i * cell, (i + 1) * cell
        if i in worked:
            out.append(WORK)
        elif row.start < right and end > left:
            out.append(WAIT)
        else:
            out.append(NOTHING)
    if row.failed and row.end is not None:
        out[min(int(row.end / cell), width - 1)] = FAIL
    return "".join(out)
