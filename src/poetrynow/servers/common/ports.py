"""The TCP port every Twisted server listens on, and its notice when descriptors run out.

:class:`SharedPort` is Twisted's own ``tcp.Port`` -- its accept loop, its recovery
from EMFILE -- made with two differences, both in ``createInternetSocket``, a public
method: it may share its port number with other processes (SO_REUSEPORT), and its
socket says when ``accept()`` fails for want of descriptors.

Twisted, out of descriptors, closes each waiting connection and logs a line for
each in its own words. The one notice a person reads rests on the errno instead
(:class:`Shortage`): a Twisted that words its lines otherwise cannot silence it.
The fast ports (:mod:`poetrynow.servers.common.fastpath`) are SharedPorts too, and their
bare accept loop reports the errors it catches the same way.
"""

from __future__ import annotations

import errno
import resource
import socket
import time
from collections.abc import Callable

from twisted.internet import tcp
from twisted.logger import Logger

#: accept() failing with these: this process (EMFILE) or the system (ENFILE) has no descriptor left.
OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE})
#: Seconds between two notices while the shortage lasts.
NOTICE_EVERY = 10.0

log = Logger()


def out_of_fds(code: int) -> str:
    """The notice's words, for an errno of :data:`OUT_OF_FDS`."""
    if code == errno.ENFILE:
        # Twisted leaves these connections queued: only EMFILE has its reserved descriptor.
        return (
            "Out of file descriptors (the system's table is full): new connections wait until some are free."
        )
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        f"Out of file descriptors (the open-files limit is {soft}): new connections are closed "
        f"at once until some are free."
    )


class Shortage:
    """Says so when accept() fails for want of descriptors: once, then at most every ``every`` seconds.

    One for the process (:data:`SHORTAGE`), so that however many ports run short,
    and however often, a log file and a terminal get one line a spell. The event
    carries ``out_of_fds`` (the errno), for an observer that wants the fact, not the words.
    """

    def __init__(self, every: float = NOTICE_EVERY, clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every, clock
        self.said = float("-inf")

    def noticed(self, error: OSError) -> None:
        if error.errno not in OUT_OF_FDS:
            return
        now = self.clock()
        if now - self.said < self.every:
            return
        self.said = now
        log.warn("{notice}", notice=out_of_fds(error.errno), out_of_fds=error.errno)


SHORTAGE = Shortage()


class NoticingSocket(socket.socket):
    """A listening socket whose ``accept()`` tells :data:`SHORTAGE` why it failed."""

    def accept(self):
        try:
            return super().accept()
        except OSError as error:
            SHORTAGE.noticed(error)
            raise


#: The namespaces Twisted's accept loop logs under on these ports: a Logger read as a
#: class attribute names itself after the class, here ours. Each line is about one
#: connection the port could not keep; the notice speaks for them all.
ACCEPT_LOOP_NAMESPACES: set[str] = set()


class SharedPort(tcp.Port):
    """Twisted's TCP listening port on a :class:`NoticingSocket`, which may share its port number.

    One process cannot keep more connections than its open-file limit; several
    processes, each with a port of this kind bound to the same number, can, and
    the kernel spreads the new connections among them.
    """

    reuse_port = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ACCEPT_LOOP_NAMESPACES.add(f"{cls.__module__}.{cls.__name__}")

    def createInternetSocket(self):
        made = tcp.Port.createInternetSocket(self)
        # The same descriptor, with Twisted's options on it, in a socket of our class.
        skt = NoticingSocket(made.family, made.type, made.proto, made.detach())
        skt.setblocking(False)
        if self.reuse_port:
            skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return skt


ACCEPT_LOOP_NAMESPACES.add(f"{SharedPort.__module__}.{SharedPort.__name__}")
