"""The timeline as a picture: a panel per run on a shared time axis, a lane per thread.

Work (the engine handling a read) is a solid mark in the task's colour; waiting
is a pale band, in the task's colour when the thread waits on that task's server
alone, grey when it waits on several at once. The legend says so.

matplotlib is an optional extra (``poetrynow[plot]``): :func:`require` says in one
line, before a run starts, that the picture cannot be drawn, rather than after.
The picture is drawn with the Agg backend, and SVG keeps its text as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from poetrynow.timeline.rows import Panel, Row

FORMATS = {".png": "png", ".svg": "svg"}
HINT = "the timeline picture needs matplotlib: pip install 'poetrynow[plot]' (or 'poetrynow[all]')"

#: Task colours: matplotlib's (the terminal's nearest are :data:`poetrynow.timeline.text.ANSI`).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
FAILED_COLOUR = "#d62728"
SEVERAL = "#b0b0b0"  # waiting on several servers at once


class TimelineError(Exception):
    """The picture cannot be drawn: no matplotlib, or a file name it cannot write."""


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


#: What the solid marks are, in the legend, unless a caller's panels hold other work too.
WORK = "work: the thread handles a read (a line, in its task's colour)"


def draw(panels: Sequence[Panel], path: str, work: str = WORK) -> None:
    """Write the panels, one above the other on a shared time axis, to ``path``; ``work``
    says in the legend what the solid marks are."""
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
        Patch(color=COLOURS[0], label=work),
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
