"""The demo's progress: one line per engine, redrawn in place while it runs.

The articles' client prints a line per read (``Task 1: got 30 bytes of poetry``), and
the demo used to pass every one of them on: hundreds of lines, under which the table
and the picture it exists for scrolled away. By default the demo shows instead one
line per engine, the poems' bytes so far against all of them, redrawn on a terminal
at most ten times a second and printed once, finished, where the output is a pipe or
a file. ``poetrynow demo --reads`` prints every read, as ``get-poetry`` does.

An engine may report from its own threads (the threads engine does), so a redraw
takes a lock; it never runs from a thread of its own, only from the events.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import TextIO

from poetrynow.events import Event, Failed, Finished, Received

#: Seconds between redraws of a live line.
REFRESH = 0.1
#: The bar's width, in characters.
BAR = 24


class EngineLine:
    """One engine's line: ``blocking  [#########-------]  2,712/6,120 bytes  1/3 poems  4.2 s``.

    ``live``: redraw it in place (a terminal); else print it once, at the end.
    """

    def __init__(
        self,
        engine: str,
        total_bytes: int,
        tasks: int,
        out: TextIO,
        live: bool,
        width: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.engine, self.total, self.tasks, self.out = engine, total_bytes, tasks, out
        self.live, self.width, self.clock = live, width, clock
        self.began = clock()
        self.nbytes = self.done = self.failed = 0
        self.drawn = float("-inf")
        self.lock = threading.Lock()
        self.ended = False
        self.columns = shutil.get_terminal_size((80, 24)).columns - 1  # a wrapped line cannot be redrawn

    def event(self, e: Event) -> None:
        with self.lock:
            if isinstance(e, Received):
                self.nbytes += e.nbytes
            elif isinstance(e, Finished):
                self.done += 1
            elif isinstance(e, Failed):
                self.failed += 1
                # The failure's own line goes to stderr next: on a terminal, onto a clear row.
                self.write("\r\x1b[K")
                self.drawn = float("-inf")
                return
            else:
                return
            now = self.clock()
            if self.live and now - self.drawn >= REFRESH:
                self.drawn = now
                self.write("\r" + self.text(now)[: self.columns])

    def write(self, text: str) -> None:
        """Write, unless the line is over or its output is gone: a terminal hung up, a closed pipe
        costs the progress line, never the engine's run (this runs inside the engine's sink)."""
        if self.ended or (not self.live and not text.endswith("\n")):
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            self.live = False
            self.ended = True

    def text(self, now: float) -> str:
        share = min(self.nbytes / self.total, 1.0) if self.total else 1.0
        filled = round(share * BAR)
        bar = "#" * filled + "-" * (BAR - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.engine:<{self.width}} [{bar}] {self.nbytes:>6,}/{self.total:,} bytes  "
            f"{self.done}/{self.tasks} poems{failed}  {now - self.began:4.1f} s"
        )

    def end(self) -> None:
        """The engine's run is over: its line, finished, once, and the cursor on the next line."""
        with self.lock:
            line = self.text(self.clock())
            self.write(("\r" + line[: self.columns] + "\x1b[K" if self.live else line) + "\n")
            self.ended = True
