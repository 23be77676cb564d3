"""``--work-log FILE``: a JSON line per transform done, saying who did it and when.

The transform server's work happens in another process from the client's, and
maybe in threads or processes of its own; its log lets the demo draw that work on
the client's time axis. ``began`` and ``ended`` are ``time.monotonic()`` as the
worker read it (:class:`~poetrynow.servers.transform.costs.Done`). Each line is flushed as it
is written, so a reader never sees half of one.

The log is a by-product: a disk that fills up (or a device that fails) costs the
log, not the poems. The first write that fails is one warning line, and the log
is off from then on.
"""

from __future__ import annotations

import json
from typing import IO, Any

from twisted.logger import Logger

from poetrynow.servers.common.startup import StartError
from poetrynow.servers.transform.costs import Done

log = Logger()


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

    def check(self) -> None:
        """Open it for append and close it again: what :meth:`open` will do, tried early
        (twistd's preflight), so that a path that cannot be written is one line."""
        self.open()
        self.close()

    def write(self, done: Done, transform: str, nbytes: int) -> None:
        file = self.file
        if file is None:
            return
        line = {
            "began": done.began,
            "ended": done.ended,
            "worker": done.worker,
            "pid": done.pid,
            "transform": transform,
            "bytes": nbytes,
        }
        try:
            file.write(json.dumps(line) + "\n")
            file.flush()
        except OSError as problem:
            self.file = None
            self._give_up(file, problem)

    def close(self) -> None:
        file, self.file = self.file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as problem:
            log.warn("Cannot close the work log {path}: {why}", path=self.path, why=problem.strerror)

    def _give_up(self, file: IO[str], problem: OSError) -> None:
        """One line, and no more writes. The line that failed is still buffered, so its close fails too."""
        log.warn(
            "Cannot write the work log {path}: {why}; it is off from here on",
            path=self.path,
            why=problem.strerror or problem,
        )
        try:
            file.close()
        except OSError:
            pass


def read_work_log(path: str) -> list[dict[str, Any]]:
    """The lines of a work log, in the order written; a line cut short (a server killed) is left out."""
    lines = []
    with open(path, encoding="utf-8") as written:
        for text in written:
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
    return lines
