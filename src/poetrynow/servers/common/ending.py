"""How a poetry server's connection ends: after the client's FIN, and with a FIN of its own.

A TCP client may legally do two things that a server which only talks can get wrong.

It may **half-close**: shut its sending side at once (``nc -N``,
``shutdown(SHUT_WR)``, many scripts). Its FIN means it has nothing more to say,
not that it has gone; a Twisted transport whose protocol does not provide
``IHalfCloseableProtocol`` takes it for a hang-up and drops the connection, poem
and all. A client that has gone is noticed when a send to it fails, or when the
kernel reports its socket broken (:mod:`poetrynow.servers.common.gone`).

It may **speak first**: a greeting, a newline typed into ``telnet``. The kernel
answers the close of a socket that holds unread input with a reset instead of a
FIN: the client sees ``Connection reset by peer`` after its poem, and on some
systems loses the end of the poem it had not read yet. So when a client has
spoken, :meth:`Answering.finish` closes only the server's sending side (a FIN
after the last byte), goes on reading and dropping what the client sends, and
closes the socket once the client has closed its side too: the "lingering
close" of web servers. Both waits are bounded: :data:`LINGER` seconds for the
client's FIN, :data:`DRAIN_LIMIT` bytes of what it sends. A client that has said
nothing (the kernel has nothing waiting from it: one FIONREAD call) is closed
at once, as before: the lingering close costs a timer and another pass of the
loop, and nearly every poetry client says nothing.
"""

from __future__ import annotations

import array
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

#: Seconds a client has, after the server's FIN, to close its side before the server closes anyway.
LINGER = 10.0
#: What a client may send that is read and dropped, at most; a client that sends more is reset.
DRAIN_LIMIT = 1 << 20


_waiting = array.array("i", [0])

try:  # POSIX; elsewhere a client's unread bytes cannot be seen, and count as none
    from fcntl import ioctl
    from termios import FIONREAD
except ImportError:  # pragma: no cover - Windows
    ioctl = FIONREAD = None  # type: ignore[assignment,misc]


def waiting(fd: int) -> int:
    """Bytes the client sent that wait unread in the kernel (FIONREAD); 0 if the socket is gone."""
    if ioctl is None:
        return 0
    try:
        ioctl(fd, FIONREAD, _waiting, True)
    except OSError:
        return 0
    return _waiting[0]


def can_half_close(transport: Any) -> bool:
    """Whether ``transport`` can send its FIN and go on reading (TCP and Unix sockets, not TLS).

    Twisted's TLS transport forwards unknown names to the TCP transport beneath
    it, whose half-close would cut the TLS stream short; TLS closes the old way.
    """
    return not ISSLTransport.providedBy(transport) and hasattr(transport, "loseWriteConnection")


@implementer(IHalfCloseableProtocol)
class Answering(Protocol):
    """A server protocol that hears the client's FIN out and ends with a FIN of its own.

    A subclass calls :meth:`finish` once its answer is written, and may override
    :meth:`client_finished` (the client's FIN came while the answer is under way;
    by default the answer goes on).
    """

    transport: Any  # a TCP transport, which can also half-close and abort
    heard_end = False  # the client's FIN came
    said_end = False  # the server's FIN is out: the answer is whole
    finishing = False
    drained = 0
    linger: Any = None

    def dataReceived(self, data: bytes) -> None:
        """A poetry client has nothing to say: what it sends is dropped, up to DRAIN_LIMIT bytes."""
        self.drained += len(data)
        if self.drained > DRAIN_LIMIT:
            self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        self.heard_end = True
        if self.said_end:
            self.transport.loseConnection()
        else:
            self.client_finished()

    def client_finished(self) -> None:
        """The client's FIN came before the answer was whole: it has nothing more to say, go on."""

    def finish(self) -> None:
        """The answer is all written: a FIN after it, then the close once the client closes."""
        if self.finishing:
            return
        self.finishing = True
        transport = self.transport
        if not can_half_close(transport) or (not self.drained and not waiting(transport.fileno())):
            transport.loseConnection()
            return
        transport.loseWriteConnection()

    def writeConnectionLost(self) -> None:
        self.said_end = True
        if self.heard_end:
            self.transport.loseConnection()
            return
        # The factory's clock (a test's), else the reactor this connection runs on (a server
        # may run on a reactor of its own, in a thread), else the global one.
        clock: Any = getattr(self.factory, "clock", None) or getattr(self.transport, "reactor", None)
        if clock is None:
            from twisted.internet import reactor as clock
        self.linger = clock.callLater(LINGER, self.transport.loseConnection)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.linger is not None and self.linger.active():
            self.linger.cancel()
        self.linger = None
