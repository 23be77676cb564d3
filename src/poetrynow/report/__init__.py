"""Events in, the articles' lines out: the only place clients' output is made.

Each engine family prints what its article shows. Part 2's blocking client
announces each task and its download time; its select client prints a line per
read, a line per closed connection and a byte count per task at the end. Both
close with ``Got N poems in H:MM:SS.ffffff``. ``--json`` swaps the text for one
JSON object per event. Failures always go to stderr, one line each.

Where to look:

- :mod:`~poetrynow.report.styles`: which lines each engine family prints, and
  when (Parts 2, 17-18, 20 and 21);
- :mod:`~poetrynow.report.lines`: the lines themselves, the articles' words;
- :mod:`~poetrynow.report.jsonlines`: ``--json``'s objects and its summary;
- :mod:`~poetrynow.report.reporter`: what every style shares (an event to its
  method, stdout and stderr) and the :class:`Summary` a run comes to;
- :mod:`~poetrynow.report.flushing`: why, and how, stdout is flushed in batches.

:func:`reporter_for` picks the style; every name above can be imported from here.
"""

from __future__ import annotations

from poetrynow.report.flushing import SoonFlusher
from poetrynow.report.jsonlines import JsonStyle, event_json
from poetrynow.report.lines import (
    downloaded_line,
    elapsed,
    failed_line,
    finished_line,
    received_line,
    restarted_line,
    size_line,
    started_line,
    total_line,
    transform_failed_line,
)
from poetrynow.report.reporter import Reporter, Summary
from poetrynow.report.styles import ActorsStyle, BlockingStyle, LazyStyle, SelectStyle, TwistedStyle

__all__ = [
    "STYLES",
    "ActorsStyle",
    "BlockingStyle",
    "JsonStyle",
    "LazyStyle",
    "Reporter",
    "SelectStyle",
    "SoonFlusher",
    "Summary",
    "TwistedStyle",
    "downloaded_line",
    "elapsed",
    "event_json",
    "failed_line",
    "finished_line",
    "received_line",
    "reporter_for",
    "restarted_line",
    "size_line",
    "started_line",
    "total_line",
    "transform_failed_line",
]

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
