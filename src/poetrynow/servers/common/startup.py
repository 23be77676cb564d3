"""Starting a Twisted server: its listener, and the one-line reasons it could not start.

The Twisted servers listen through :class:`ListeningService`, which logs the port
really bound and words a failure as every server does
(:func:`~poetrynow.servers.common.listen.cannot_listen`). A start-up failure is logged
once, as a critical line, and raised for the front end (a command, twistd) to word.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.posixbase import PosixReactorBase
from twisted.logger import Logger
from twisted.python.failure import Failure

from poetrynow.address import split_description
from poetrynow.servers.common.gone import keep_alive
from poetrynow.servers.common.listen import ListenError, Where, cannot_listen, listen_on_each, listen_shared
from poetrynow.servers.common.ports import SharedPort

log = Logger()


class StartError(Exception):
    """A service other than the listener could not start (a work log, a process pool): one line says why."""


def cannot_start(problem: Exception) -> Exception:
    """Log why start-up failed, once, as a critical line; return ``problem`` for the caller to raise."""
    log.critical("Cannot start: {why}", why=str(problem))
    return problem


def listened(deferred: Deferred) -> Any:
    """What an endpoint's listen Deferred fired with, at once (TCP, Unix and SSL all fire at once)."""
    outcome: list = []
    deferred.addBoth(outcome.append)
    if not outcome:
        deferred.cancel()
        raise ListenError("the endpoint did not listen at once")
    return outcome[0]


def own_port(reactor: Any, description: str, factory: Any, port_class: Any, reuse_port: bool = False) -> Any:
    """A ``port_class`` port (a :class:`~poetrynow.servers.common.ports.SharedPort`: the plain
    edition's, or a fast one whose accept loop does the work itself), listening, for a
    ``tcp``/``tcp6`` description; None for any other kind (they take the ordinary endpoint).

    The port is what ``reactor.listenTCP`` would make, of that class; a failure
    to listen is returned, not raised.
    """
    kind, args, kwargs = split_description(description)
    if kind not in ("tcp", "tcp6"):
        return None
    port = int(args[0] if args else kwargs["port"])
    interface = kwargs.get("interface", "::" if kind == "tcp6" else "")
    listening = port_class(port, factory, int(kwargs.get("backlog", 50)), interface, reactor)
    listening.reuse_port = reuse_port
    try:
        listening.startListening()
    except CannotListenError as problem:
        return problem
    return listening


class ListeningService(service.Service):
    """Listens on a server endpoint, and logs where it really listens.

    With ``--port 0`` the kernel picks the port, and the log is the only place a
    daemon can tell where it listens. Like Twisted's own endpoint services it
    listens in privilegedStartService, so twistd can bind a low port before
    dropping root; unlike them it fails there at once, with one line. An
    interface named by a host name (``localhost``) is a port on each address
    the name resolves to, all on one port number (:attr:`ports`).
    """

    def __init__(self, factory, where: Where, what: str, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.factory, self.where, self.what = factory, where, what
        self.reactor = reactor
        self.ports: list[Any] = []  # the IListeningPorts, once listening
        self.port_class: Any = None  # the TCP port class, on a reactor with POSIX ports

    @property
    def listening(self) -> Any:
        """The first listening port (None before start and after stop)."""
        return self.ports[0] if self.ports else None

    @property
    def port(self) -> int:
        """The TCP port listened on; 0 for an endpoint without one (a Unix socket)."""
        return int(getattr(self.listening.getHost(), "port", 0))

    def place(self, listening: Any = None) -> str:
        """``port N`` for TCP, the description otherwise (of ``listening``, or the port listened on now)."""
        host = (listening or self.listening).getHost()
        return f"port {host.port}" if hasattr(host, "port") else self.where.label

    def listening_line(self) -> str:
        return f"{self.what} on {self.place()}."

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        if not self.ports:
            self.ports = self._listen()

    def _listen(self) -> list[Any]:
        label = self.where.label
        try:
            self.port_class = self._edition()
            return listen_on_each(self.where, self._listen_one, _port_number, _stop_at_once)
        except ListenError as problem:
            raise cannot_start(problem) from None
        except OSError as problem:
            raise cannot_start(ListenError(cannot_listen(label, problem))) from None
        except Exception as problem:  # a description serverFromString cannot use
            raise cannot_start(ListenError(f"cannot listen on {label}: {problem}")) from None

    def _edition(self) -> Any:
        """The fast edition's port class, if the factory has one, it runs here and was not
        declined (``--plain``); else the plain edition's :class:`SharedPort`. None on a
        reactor without POSIX ports (a test's MemoryReactor): its own ``listenTCP``."""
        if not isinstance(self.reactor, PosixReactorBase):
            return None
        kind = getattr(self.factory, "fast_port", None)
        if kind is not None:
            from poetrynow.servers.common import fastpath

            fast = fastpath.port_class(kind, plain=getattr(self.factory, "plain", False))
            if fast is not None:
                return fast
        return SharedPort

    def _listen_one(self, description: str) -> Any:
        """One listening port for ``description``; the OSError if it cannot listen."""
        result = None
        if self.port_class is not None:
            result = own_port(self.reactor, description, self.factory, self.port_class, self.where.reuse_port)
        elif self.where.reuse_port:  # a reactor without POSIX ports: adopt a socket that shares
            shared = listen_shared(description)  # an OSError if it cannot listen
            with shared:
                shared.setblocking(False)  # the reactor accepts until the kernel says "no more"
                result = self.reactor.adoptStreamPort(shared.fileno(), shared.family, self.factory)
        if result is None:
            endpoint = serverFromString(self.reactor, description)
            result = listened(endpoint.listen(self.factory))
        if isinstance(result, (Failure, CannotListenError)):
            error = result.value if isinstance(result, Failure) else result
            if isinstance(error, CannotListenError):
                error = error.socketError
            if not isinstance(error, OSError):
                error = OSError(str(error))
            raise error
        if getattr(self.factory, "keep_alive", False) and hasattr(result, "socket"):
            keep_alive(result.socket)  # the connections it accepts inherit it
        return result

    def startService(self):
        if not self.ports:
            self.privilegedStartService()
        service.Service.startService(self)
        log.info("{line}", line=self.listening_line())

    def stopService(self):
        service.Service.stopService(self)
        ports, self.ports = self.ports, []
        if not ports:
            return None
        place = self.place(ports[0])
        log.info("No longer {what} on {place}.", what=self.what[:1].lower() + self.what[1:], place=place)
        stopping = [port.stopListening() for port in ports]
        if len(stopping) == 1:
            return stopping[0]
        return gatherResults([d for d in stopping if d is not None], consumeErrors=True).addCallback(
            lambda _: None
        )


def _port_number(listening: Any) -> int:
    return int(listening.getHost().port)


def _stop_at_once(listening: Any) -> None:
    """Undo a listen that start-up is giving up on."""
    listening.stopListening()
