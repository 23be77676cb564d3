"""Part 1's figures, drawn from a measured run: one row per task, time across.

Each task's row is a bar for the connection's life, from the connect call to the
close, shaded where the task is only waiting, with a tick for every chunk at the
moment it arrived. A failed task ends in a red cross. The demo draws one panel
per engine on a shared time axis, so the blocking engine's staircase (figure 1)
and the concurrent engines' overlapping rows (figures 2 and 3) are seen at once.

matplotlib is an optional extra (``poetrynow[plot]``); :func:`require` says how
to get it in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from poetrynow.events import Event, Failed, Finished, Received, Started

FORMATS = {".png": "png", ".svg": "svg"}
HINT = "--timeline needs matplotlib: pip install 'poetrynow[plot]' (or 'poetrynow[all]')"


class TimelineError(Exception):
    """The picture cannot be drawn: no matplotlib, or a file name it cannot write."""


@dataclass(frozen=True)
class Row:
    """One task, in seconds since its panel's start."""

    label: str
    start: float
    end: float | None
    chunks: tuple[float, ...]
    failed: bool


@dataclass(frozen=True)
class Panel:
    title: str
    rows: tuple[Row, ...]


def rows_of(events: Sequence[Event], began: float) -> tuple[Row, ...]:
    """Turn one run's events into rows, task by task, times relative to ``began``."""
    tasks: dict[int, dict] = {}
    for e in events:
        task = tasks.setdefault(
            e.task,
            {
                "label": f"Task {e.task}  {e.address}",
                "start": None,
                "end": None,
                "chunks": [],
                "failed": False,
            },
        )
        t = e.t - began
        if isinstance(e, Started):
            task["start"] = t
        elif isinstance(e, Received):
            task["chunks"].append(t)
        elif isinstance(e, Finished):
            task["end"] = t
        elif isinstance(e, Failed):
            task["end"], task["failed"] = t, True
    return tuple(
        Row(
            v["label"],
            v["start"] if v["start"] is not None else 0.0,
            v["end"],
            tuple(v["chunks"]),
            v["failed"],
        )
        for _, v in sorted(tasks.items())
    )


def format_for(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TimelineError(f"--timeline writes .png or .svg, not {suffix or 'a file without a suffix'!r}")
    return FORMATS[suffix]


def require(path: str) -> str:
    """The file format; or fail early, in one line, when the picture could not be drawn."""
    kind = format_for(path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TimelineError(HINT) from None
    return kind


def draw(panels: Sequence[Panel], path: str) -> None:
    """Write the panels, one above the other on a shared time axis, to ``path``."""
    kind = require(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Keep text as text in SVG: labels stay searchable, selectable and testable.
    plt.rcParams["svg.fonttype"] = "none"
    heights = [max(len(panel.rows), 1) for panel in panels]
    figure, axes = plt.subplots(
        len(panels),
        1,
        sharex=True,
        squeeze=False,
        figsize=(10, 1.2 + 0.45 * sum(heights) + 0.5 * len(panels)),
        gridspec_kw={"height_ratios": heights},
    )
    times = [0.1]
    for panel in panels:
        for row in panel.rows:
            times.append(row.end if row.end is not None else row.start)
            times.extend(row.chunks)
    last = max(times)
    for ax, panel in zip(axes[:, 0], panels):
        _draw_panel(ax, panel, last)
    axes[-1, 0].set_xlabel("seconds since the engine started")
    figure.tight_layout()
    try:
        figure.savefig(path, format=kind, dpi=110)
    except OSError as problem:
        raise TimelineError(f"cannot write {path}: {problem.strerror or problem}") from None
    finally:
        plt.close(figure)


def _draw_panel(ax, panel: Panel, last: float) -> None:
    ax.set_title(panel.title, loc="left", fontsize=10)
    for y, row in enumerate(panel.rows):
        end = row.end if row.end is not None else last
        color = "#d62728" if row.failed else "#1f77b4"
        # The connection's life, shaded: time spent waiting for the server.
        ax.barh(y, end - row.start, left=row.start, height=0.6, color=color, alpha=0.18, edgecolor=color)
        if row.chunks:
            ax.vlines(row.chunks, y - 0.28, y + 0.28, color=color, linewidth=0.8)
        if row.failed:
            ax.plot([end], [y], marker="x", color=color, markersize=9, markeredgewidth=2)
    ax.set_yticks(range(len(panel.rows)), [row.label for row in panel.rows], fontsize=8)
    ax.set_ylim(len(panel.rows) - 0.5, -0.5)
    ax.set_xlim(0, last * 1.02)
    ax.grid(axis="x", alpha=0.3)
