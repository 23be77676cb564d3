"""Running a Twisted server from a command: start its services, listen, log, run.

Every Twisted server command goes through :func:`serve`, so they share the same
order (services first, so a missing poem is a usage error before anything
listens), the same one-line errors, the listening line printed first and flushed,
plain log lines on stdout, and a clean exit on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import socket
import sys
from typing import Callable, Sequence

from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel, formatEvent, globalLogBeginner

from poetrynow.cli.common import FAILED, OK, USAGE, error
from poetrynow.poems import PoemNotFound
from poetrynow.servers.listen import cannot_listen


def resolve_iface(iface: str) -> str:
    """Twisted listens on addresses, not names: ``localhost`` -> ``127.0.0.1``."""
    return socket.getaddrinfo(iface, None, type=socket.SOCK_STREAM)[0][4][0]


def plain_observer(min_level: LogLevel, out=None):
    """A log observer that prints each event's text alone, one line, flushed."""
    def observe(event):
        if event.get("log_level", LogLevel.info) < min_level:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}"
        print(text, file=out or sys.stdout, flush=True)
    return observe


def serve(prog: str, services: Sequence, factory, port: int, iface: str,
          listening_line: Callable[[int], str], quiet: bool = False, verbose: bool = False) -> int:
    from twisted.internet import reactor

    try:
        for service in services:
            service.startService()
    except PoemNotFound as problem:
        return error(prog, str(problem), USAGE)
    try:
        listening = reactor.listenTCP(port, factory, interface=resolve_iface(iface), backlog=4096)
    except socket.gaierror as problem:
        return error(prog, cannot_listen(iface, port, problem), FAILED)
    except CannotListenError as problem:
        return error(prog, cannot_listen(iface, port, problem.socketError), FAILED)
    print(listening_line(listening.getHost().port), flush=True)
    level = LogLevel.warn if quiet else (LogLevel.debug if verbose else LogLevel.info)
    globalLogBeginner.beginLoggingTo([plain_observer(level)], discardBuffer=True, redirectStandardIO=False)
    reactor.run()  # Twisted turns SIGINT and SIGTERM into a clean stop
    for service in reversed(services):
        if service.running:
            service.stopService()
    return OK
