"""Flushing stdout in batches: ten thousand downloads print a hundred thousand lines.

A flush (a write to the file or pipe) per line cost more than making the line.
To a file or a pipe, :class:`~poetrynow.report.reporter.Reporter` writes its lines
and leaves the flush to a :class:`SoonFlusher`, at most a twentieth of a second
later; on a terminal it still flushes every line.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO


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
