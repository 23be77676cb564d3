"""Handing a socket already dialled to Twisted: the twisted engine's fast way in.

The articles' clients connect through the reactor (``connectTCP``, an endpoint),
as :func:`~poetrynow.clients.get_poetry.get_poetry_at` does. The twisted engine
asks the kernel for every connection first instead
(:func:`~poetrynow.clients.connect.start_all`), and only then builds Twisted's
objects around each socket: a server starts a client's schedule when it accepts,
so the last connection asked for, not the building, sets the end of the run.

:func:`adopt` is that second step. A socket already connected (loopback nearly
always is) becomes a transport at once, through ``adoptStreamConnection``; one
still connecting (a real network) is watched by a :class:`ConnectWaiter` until the
kernel says how its connect ended. Cancelling waits no longer.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from twisted.internet import defer, error
from twisted.internet.interfaces import IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.clients.connect import connect_error, is_connected
from poetrynow.clients.oneshot import OneShotClientFactory


def adopt(
    factory: OneShotClientFactory, sock: socket.socket, reactor, connect_timeout: float
) -> defer.Deferred:
    """Give ``factory`` a socket :func:`~poetrynow.clients.connect.dial` started; the caller's Deferred.

    Connected already, it becomes a transport now; still connecting, it is waited
    for first, for up to ``connect_timeout`` seconds.
    """
    if is_connected(sock):
        _take_over(factory, sock, reactor)
        return factory.result

    def connected(problem: Exception | None) -> None:
        factory.connecting = None
        if problem is None:
            _take_over(factory, sock, reactor)
        else:
            sock.close()
            factory.failed(Failure(problem))

    waiter = ConnectWaiter(sock, reactor, connect_timeout, connected)
    factory.connecting = defer.Deferred(lambda _: waiter.cancel())  # what the factory's cancel stops
    factory.connecting.addErrback(lambda _: None)
    return factory.result


def _take_over(factory: OneShotClientFactory, sock: socket.socket, reactor) -> None:
    try:
        reactor.adoptStreamConnection(sock.fileno(), sock.family, factory)  # on a copy of the descriptor
    except OSError as problem:
        factory.failed(Failure(_why_not_adopted(sock, problem)))
    finally:
        sock.close()


def _why_not_adopted(sock: socket.socket, problem: OSError) -> OSError:
    """What to report when Twisted would not take ``sock``: the socket's own error if it has one.

    A server that resets the connection at once (a crash mid-poem) can do it between
    :func:`is_connected` and the adoption, on a loaded machine. Twisted asks the socket
    for its peer, which a reset socket no longer has ("Transport endpoint is not
    connected"); the reset itself is the socket's pending error, and every engine says
    "Connection reset by peer" for it. The bytes that came before the reset are not
    counted then, as when the reset comes before the connect is seen to be done.
    """
    if problem.errno == errno.ENOTCONN:
        return connect_error(sock) or problem
    return problem


@implementer(IWriteDescriptor)
class ConnectWaiter:
    """Waits, on the reactor, for a connect already asked of the kernel to end.

    ``done(None)`` once connected; ``done(problem)`` if it failed, timed out or
    was cancelled. Called once.
    """

    def __init__(
        self, sock: socket.socket, reactor, timeout: float, done: Callable[[Exception | None], None]
    ):
        self.sock, self.reactor, self.done = sock, reactor, done
        self.timer = reactor.callLater(timeout, self._end, error.TimeoutError())
        reactor.addWriter(self)

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "ConnectWaiter"

    def doWrite(self) -> None:
        self._end(connect_error(self.sock))

    def connectionLost(self, reason: Failure) -> None:
        # An error on the socket (a refusal): the reactor says the connection is lost; the socket says why.
        problem: Exception | None = connect_error(self.sock)
        if problem is None:
            problem = reason.value if isinstance(reason.value, Exception) else error.ConnectionLost()
        self._end(problem)

    def cancel(self) -> None:
        self._end(defer.CancelledError())

    def _end(self, problem: Exception | None) -> None:
        if self.done is None:
            return
        done, self.done = self.done, None  # type: ignore[assignment]
        self.reactor.removeWriter(self)
        if self.timer.active():
            self.timer.cancel()
        done(problem)
