"""Starting a Twisted server: its listener, and the one-line reasons it could not start.

The Twisted servers listen through :class:`ListeningService`, which logs the port
really bound and words a failure as every server does
(:func:`~poetrynow.servers.listen.cannot_listen`). A start-up failure is logged
once, as a critical line, and raised for the front end (a command, twistd) to word.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from poetrynow.servers.listen import ListenError, cannot_listen

BACKLOG = 4096  # a connect storm of thousands must not overflow the accept queue

log = Logger()


def cannot_start(problem: Exception) -> Exception:
    """Log why start-up failed, once, as a critical line; return ``problem`` for the caller to raise."""
    log.critical("Cannot start: {why}", why=str(problem))
    return problem


def resolve_iface(iface: str) -> str:
    """Twisted listens on addresses, not names: ``localhost`` -> ``127.0.0.1``."""
    return str(socket.getaddrinfo(iface, None, type=socket.SOCK_STREAM)[0][4][0])


class ListeningService(service.Service):
    """Twisted's TCPServer, plus a log line that names the port really bound.

    With ``--port 0`` the kernel picks the port, and the log is the only place a
    daemon can tell where it listens. Like TCPServer it listens in
    privilegedStartService, so twistd can bind a low port before dropping root.
    """

    def __init__(self, factory, port: int, iface: str, what: str, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.factory, self.port_number, self.iface, self.what = factory, port, iface, what
        self.reactor = reactor
        self.listening: Any = None  # the IListeningPort, once listening

    @property
    def port(self) -> int:
        return self.listening.getHost().port

    def listening_line(self) -> str:
        return f"{self.what} on port {self.port}."

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        if self.listening is None:
            self.listening = self._listen()

    def _listen(self):
        problem: OSError
        try:
            address = resolve_iface(self.iface)
            return self.reactor.listenTCP(self.port_number, self.factory, interface=address, backlog=BACKLOG)
        except socket.gaierror as error:
            problem = error
        except CannotListenError as error:
            problem = error.socketError
        raise cannot_start(ListenError(cannot_listen(self.iface, self.port_number, problem))) from None

    def startService(self):
        if self.listening is None:
            self.privilegedStartService()
        service.Service.startService(self)
        log.info("{line}", line=self.listening_line())

    def stopService(self):
        service.Service.stopService(self)
        listening, self.listening = self.listening, None
        if listening is not None:
            log.info(
                "No longer {what} on port {port}.",
                what=self.what[:1].lower() + self.what[1:],
                port=listening.getHost().port,
            )
            return listening.stopListening()
        return None
