"""The lab's children: our own commands, run as the command line runs them, read line by line.

Each is started through the reactor (``spawnProcess``), so the lab's page stays live
while they run, with ``POETRYNOW_END_WITH`` naming the lab: a lab killed outright takes
them with it (:func:`poetrynow.stopping.end_with_parent`). Every wait has a bound: a
line is at most :data:`LINE_LIMIT` bytes, a child that ignores SIGTERM is killed
:data:`STOP_WITHIN` seconds later, and what it says on stderr is kept to its last
:data:`ERR_KEPT` bytes, for the one line that says why it failed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from poetrynow.stopping import END_WITH

#: The longest line a child may print (a finished event carries its whole poem).
LINE_LIMIT = 1 << 20
#: Seconds between SIGTERM and SIGKILL for a child asked to stop.
STOP_WITHIN = 5.0
#: The bytes of stderr kept, for the reason a child failed.
ERR_KEPT = 4096
#: The status of a child that could not be started (the shell's, for a command it cannot run).
NOT_STARTED = 127

log = Logger()


class Child(protocol.ProcessProtocol):
    """One command as a child: ``on_line`` for each line of its stdout; ``ended`` fires with its
    exit status (a negative one for a signal)."""

    def __init__(self, reactor: Any, on_line: Callable[[str], None]):
        self.reactor, self.on_line = reactor, on_line
        self.pending = bytearray()
        self.err = b""
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.status: int | None = None
        self.kill_later: Any = None

    def outReceived(self, data: bytes) -> None:
        self.pending += data
        if b"\n" in data:  # (split only when a line ends: a long line's chunks cost no re-splitting)
            *lines, rest = bytes(self.pending).split(b"\n")
            self.pending = bytearray(rest)
            for line in lines:
                self.deliver(line)
        if len(self.pending) > LINE_LIMIT:
            self.pending = bytearray()
            self.err += b"a line past the lab's limit\n"
            self.stop()

    def deliver(self, line: bytes) -> None:
        """One line to ``on_line``: a line it cannot take is logged, and costs that line only."""
        try:
            self.on_line(line.decode("utf-8", errors="replace"))
        except Exception:
            log.failure("the lab could not take a line of its child's")

    def errReceived(self, data: bytes) -> None:
        self.err = (self.err + data)[-ERR_KEPT:]

    def reason(self) -> str:
        """The child's last line on stderr, for the one line that says why it failed."""
        lines = self.err.decode("utf-8", errors="replace").strip().splitlines()
        return lines[-1] if lines else f"it ended with status {self.status}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within STOP_WITHIN seconds."""
        if self.status is not None or self.transport is None:
            return
        try:
            self.transport.signalProcess("TERM")
        except error.ProcessExitedAlready:
            return
        if self.kill_later is None:
            self.kill_later = self.reactor.callLater(STOP_WITHIN, self._kill)

    def _kill(self) -> None:
        if self.transport is None:
            return
        try:
            self.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    def processEnded(self, reason: Any) -> None:
        if self.kill_later is not None and self.kill_later.active():
            self.kill_later.cancel()
        value = reason.value
        code = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        self.status = -sig if code is None and sig else (code or 0)
        try:
            if self.pending:
                self.deliver(bytes(self.pending))
                self.pending = bytearray()
        finally:
            self.ended.callback(self.status)


def spawn(reactor: Any, command: str, args: list[str], child: Child, cwd: str | None = None) -> Child:
    """Run ``command`` (``slowpoetry``, ``get-poetry``...) with ``args`` as ``child``."""
    module = f"poetrynow.cli.{command.replace('-', '')}"
    env = dict(os.environ, **{END_WITH: str(os.getpid())})
    argv = [sys.executable, "-m", module, *args]
    try:
        reactor.spawnProcess(child, sys.executable, argv, env=env, path=cwd)
    except Exception as problem:  # (out of descriptors, a fork refused): it ended before it began
        child.err += f"{command} could not be started: {problem}\n".encode()
        child.status = NOT_STARTED
        child.ended.callback(NOT_STARTED)
    return child
