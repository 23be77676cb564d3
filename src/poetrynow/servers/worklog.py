"""``--work-log FILE``: a JSON line per transform done, saying who did it and when.

The transform server's work happens in another process from the client's, and
maybe in threads or processes of its own; its log lets the demo draw that work on
the client's time axis. ``began`` and ``ended`` are ``time.monotonic()`` as the
worker read it (:class:`~poetrynow.servers.costs.Done`). Each line is flushed as it
is written, so a reader never sees half of one.
"""

from __future__ import annotations

import json
from typing import IO, Any

from poetrynow.servers.costs import Done
from poetrynow.servers.startup import StartError


class WorkLogError(StartError):
    """The work log cannot be written: the one line says why."""


class WorkLog:
    """Appends a line per transform done; opened when the service starts, closed when it stops."""

    def __init__(self, path: str):
        self.path = path
        self.file: IO[str] | None = None

    def open(self) -> None:
        try:
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  # closed by close()
        except OSError as problem:
            raise WorkLogError(
                f"cannot write the work log {self.path}: {problem.strerror or problem}"
            ) from None

    def write(self, done: Done, transform: str, nbytes: int) -> None:
        if self.file is None:
            return
        line = {
            "began": done.began,
            "ended": done.ended,
            "worker": done.worker,
            "pid": done.pid,
            "transform": transform,
            "bytes": nbytes,
        }
        self.file.write(json.dumps(line) + "\n")
        self.file.flush()

    def close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.close()


def read_work_log(path: str) -> list[dict[str, Any]]:
    """The lines of a work log, in the order written; a line cut short (a server killed) is left out."""
    lines = []
    with open(path, encoding="utf-8") as log:
        for text in log:
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
    return lines
