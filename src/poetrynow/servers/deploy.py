"""The service trees that both the commands and twistd run (Part 16).

Each server is a :class:`ServerTree`: a MultiService holding the service that
owns the poem (or the transforms, or the upstream) and a
:class:`ListeningService` that listens with the factory. ``fastpoetry`` and
``twistd fastpoetry`` build the very same tree with :func:`fast_poetry`; only
who starts it, and where its log goes, differ.

A server that cannot start (a poem that cannot be read, a port in use) says why
in one critical log line and raises. Under twistd that exception would end in a
traceback on stderr, so :func:`cannot_start` also arranges for the uncaught
exception to print as one line instead.
"""

from __future__ import annotations

import os
import socket
import sys

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from poetrynow.netstring import DEFAULT_MAX_LENGTH
from poetrynow.servers.listen import ListenError, cannot_listen

BACKLOG = 4096  # a connect storm of thousands must not overflow the accept queue

log = Logger()


def cannot_start(problem: Exception) -> Exception:
    """Log why start-up failed, once; return ``problem`` for the caller to raise.

    twistd lets an exception from startService escape to the top level (after
    removing its pid file and telling a daemon's parent). The hook installed
    here prints such an exception as one ``prog: error: ...`` line; any other
    exception keeps Python's usual report.
    """
    log.critical("Cannot start: {why}", why=str(problem))
    problem.poetrynow_startup = True
    previous = sys.excepthook
    if getattr(previous, "poetrynow_hook", False):
        return problem

    def hook(kind, value, traceback):
        if getattr(value, "poetrynow_startup", False):
            prog = os.path.basename(sys.argv[0]) or "twistd"
            # The real stderr: twistd has pointed sys.stderr into the log, which has the line.
            print(f"{prog}: error: {value}", file=sys.__stderr__, flush=True)
        else:
            previous(kind, value, traceback)

    hook.poetrynow_hook = True
    sys.excepthook = hook
    return problem


def resolve_iface(iface: str) -> str:
    """Twisted listens on addresses, not names: ``localhost`` -> ``127.0.0.1``."""
    return socket.getaddrinfo(iface, None, type=socket.SOCK_STREAM)[0][4][0]


class ListeningService(service.Service):
    """Twisted's TCPServer, plus a log line that names the port really bound.

    With ``--port 0`` the kernel picks the port, and the log is the only place a
    daemon can tell where it listens. Like TCPServer it listens in
    privilegedStartService, so twistd can bind a low port before dropping root.
    """

    def __init__(self, factory, port: int, iface: str, what: str, reactor=None):
        self.factory, self.port_number, self.iface, self.what = factory, port, iface, what
        self.reactor = reactor
        self.listening = None  # the IListeningPort, once listening

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
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        try:
            address = resolve_iface(self.iface)
            return reactor.listenTCP(self.port_number, self.factory, interface=address, backlog=BACKLOG)
        except socket.gaierror as problem:
            error = problem
        except CannotListenError as problem:
            error = problem.socketError
        raise cannot_start(ListenError(cannot_listen(self.iface, self.port_number, error))) from None

    def startService(self):
        if self.listening is None:
            self.privilegedStartService()
        service.Service.startService(self)
        log.info("{line}", line=self.listening_line())

    def stopService(self):
        service.Service.stopService(self)
        listening, self.listening = self.listening, None
        if listening is not None:
            log.info("No longer {what} on port {port}.", what=self.what[:1].lower() + self.what[1:],
                     port=listening.getHost().port)
            return listening.stopListening()
        return None


class ServerTree(service.MultiService):
    """One server: the service that holds what it serves, then its listener.

    The order matters when the tree is started without twistd: the poem is read
    before anything listens, so a missing poem never opens a port.
    """

    def __init__(self, name: str, held, factory, port: int, iface: str, what: str):
        service.MultiService.__init__(self)
        self.setName(name)
        self.held = held
        self.listener = ListeningService(factory, port, iface, what)
        held.setServiceParent(self)
        self.listener.setServiceParent(self)


def fast_poetry(poem: str, port: int = 0, iface: str = "localhost", log_clients: bool = True) -> ServerTree:
    from poetrynow.servers.fast import PoetryFactory, PoetryService

    held = PoetryService(poem)
    return ServerTree("fastpoetry", held, PoetryFactory(held, log_clients=log_clients), port, iface,
                      f"Serving {poem}")


def slow_poetry(poem: str, num_bytes: int = 10, delay: float = 0.1, port: int = 0,
                iface: str = "localhost", log_clients: bool = True) -> ServerTree:
    from poetrynow.servers.fast import PoetryService
    from poetrynow.servers.slow import SlowPoetryFactory

    held = PoetryService(poem)
    factory = SlowPoetryFactory(held, num_bytes, delay, log_clients=log_clients)
    return ServerTree("slowpoetry", held, factory, port, iface, f"Serving {poem}")


def transformed_poetry(port: int = 0, iface: str = "localhost", max_length: int = DEFAULT_MAX_LENGTH,
                       timeout: float | None = 60.0) -> ServerTree:
    from poetrynow.servers.transform import TransformFactory, TransformService

    held = TransformService(max_length=max_length)
    return ServerTree("transformedpoetry", held, TransformFactory(held, timeout=timeout), port, iface,
                      "Serving transforms")


def poetry_proxy(upstream, port: int = 0, iface: str = "localhost", timeout: float | None = None) -> ServerTree:
    from poetrynow.servers.proxy import PoetryProxyFactory, ProxyService

    held = ProxyService(upstream.host, upstream.port, timeout=timeout)
    return ServerTree("poetryproxy", held, PoetryProxyFactory(held), port, iface, f"Proxying {upstream}")
