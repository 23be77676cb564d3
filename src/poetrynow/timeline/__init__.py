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

What a run did is worked out once, and drawn two ways:

- :mod:`~poetrynow.timeline.rows`: one run's events as a :class:`Panel`, a
  :class:`Row` per task, with the lane (the thread) that did its work;
- :mod:`~poetrynow.timeline.picture`: the picture, with matplotlib (an optional
  extra; :func:`require` says how to get it, in one line);
- :mod:`~poetrynow.timeline.text`: the same panels in the terminal, a row per
  task in Unicode blocks (and a colour per task when the terminal has colours).

Every name they offer can be imported from here.
"""

from __future__ import annotations

from poetrynow.timeline.picture import (
    COLOURS,
    FAILED_COLOUR,
    FORMATS,
    HINT,
    SEVERAL,
    TimelineError,
    colour,
    draw,
    format_for,
    have_matplotlib,
    require,
    waiting,
)
from poetrynow.timeline.rows import MAIN, Panel, Row, lane_names, rows_of
from poetrynow.timeline.text import (
    ANSI,
    FAIL,
    NOTHING,
    WAIT,
    WORK,
    terminal_width,
    text_timeline,
    wants_colour,
)

__all__ = [
    "ANSI",
    "COLOURS",
    "FAIL",
    "FAILED_COLOUR",
    "FORMATS",
    "HINT",
    "MAIN",
    "NOTHING",
    "SEVERAL",
    "WAIT",
    "WORK",
    "Panel",
    "Row",
    "TimelineError",
    "colour",
    "draw",
    "format_for",
    "have_matplotlib",
    "lane_names",
    "require",
    "rows_of",
    "terminal_width",
    "text_timeline",
    "waiting",
    "wants_colour",
]
