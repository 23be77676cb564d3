"""The timeline in the terminal: the demo's picture for anyone without matplotlib, or a file viewer.

A row per task, labelled with its lane (the thread that did its work), in cells
of Unicode blocks across a time axis the panels share, so that figure 1's
staircase and figure 3's overlap show in the demo's own output. Each task's
cells take its colour when the terminal has colours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from poetrynow.timeline.rows import Panel, Row

#: The terminal's (ANSI) colours nearest to the picture's :data:`poetrynow.timeline.picture.COLOURS`.
ANSI = ("34", "33", "32", "35", "31", "95", "36", "93")

WORK, WAIT, FAIL, NOTHING = "█", "─", "✗", " "


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

    A cell is ``█`` when the task's thread handled a read in it (or, for a
    server's work, when the work went on in it), ``─`` while
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
    return f"{row.name or f'task {row.task}'}  {row.lane}"


def _covered(began: float, done: float, cell: float, width: int) -> range:
    """The cells whose middles a span of work covers: none for a read's handling, which takes
    microseconds (it marks the cell it ends in), each of them for a server's work of seconds."""
    return range(max(0, math.ceil(began / cell - 0.5)), min(width, math.floor(done / cell - 0.5) + 1))


def _cells(row: Row, width: int, cell: float, last: float) -> str:
    end = row.end if row.end is not None else last
    out = []
    worked: set[int] = set()
    for began, done in row.work:
        worked.update(_covered(began, done, cell, width) or [min(int(done / cell), width - 1)])
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
