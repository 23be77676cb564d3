"""A listening port that answers most connections in one write, on the reactor.

A fast poetry server (and a proxy with the poem in its cache) has nothing to say
to a client but the whole poem, then goodbye. For a short poem, Twisted's usual
path does far more than that: a transport object and a protocol per client, an
epoll registration for reading, another for writing, a buffered write sent on the
next pass of the loop, then the unregistering. Measured, that bookkeeping cost as
much CPU as the kernel's own work for the connection (docs/benchmarks.md).

:class:`OneWritePort` is a ``tcp.Port`` -- the reactor still watches it and calls
its ``doRead``, twistd and the service tree still start and stop it -- whose
``doRead`` accepts a batch of clients and, for each, offers the whole answer to
the kernel at once. When the kernel takes it all, the socket is closed and that
is the connection's whole life. Only when it does not (a large poem, a full
buffer) is the socket handed to an ordinary Twisted transport, which sends the
rest (by a pull producer, for a large rest) and closes as always.

The factory decides what to answer: ``answer_now()`` returns the bytes, or None
to take Twisted's ordinary path (a proxy with nothing cached yet).
``answered(address, nbytes)``, unless None, is called once per client answered
this way (the address as ``accept`` gives it), to log or count it; it should be
cheap.

The slow server's fast path (:class:`~poetrynow.servers.slow.fast.SlowPort`)
shares the pieces: :func:`bare_accepts` (new connections as descriptors, no
socket objects) and :class:`BarePort` (the hand-over of a bare connection to an
ordinary transport). Each private name they use is checked at start-up
(:mod:`poetrynow.servers.common.fastpath`).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from poetrynow.servers.common import ports
from poetrynow.servers.common.ending import DRAIN_LIMIT, Answering, waiting
from poetrynow.servers.common.guard import BUG, costs_one_connection, reset_fd
from poetrynow.servers.common.logline import peer_of
from poetrynow.servers.common.ports import SharedPort
from poetrynow.servers.common.sending import send_rest

log = Logger(namespace="poetrynow.servers.common.fastpath")

#: Connections accepted per call of doRead before yielding to the rest of the loop.
BATCH = 256
#: The longest answer written in the accept loop (and at most half the send buffer).
QUICK_LIMIT = 64 << 10
SEND_TIMEOUT = struct.pack("ll", 0, 1)  # one microsecond, which the kernel rounds up to a tick


class TheRest(Answering):
    """The protocol of a connection the kernel did not take whole: send the rest, then end."""

    def __init__(self, data: bytes, sent: int):
        self.data, self.sent = data, sent

    @costs_one_connection
    def connectionMade(self):
        send_rest(self, self.data, self.sent)


def close_cleanly(fd: int) -> None:
    """Close a bare socket with a FIN, after dropping whatever the client sent.

    Nobody reads a bare connection, and the kernel answers the close of a socket
    with unread input with a reset, which can cost the client the end of its
    poem. A client that sent a little (a greeting, a stray newline) gets a clean
    end; one that sent more than DRAIN_LIMIT gets the reset it asked for. Asking
    the kernel how much is waiting (FIONREAD) costs one call and no socket
    object, and a read of what is waiting never blocks.
    """
    drained = 0
    try:
        while drained < DRAIN_LIMIT and (unread := waiting(fd)):
            drained += len(os.read(fd, min(unread, 1 << 16)))
    except OSError:  # gone: nothing to drain
        pass
    os.close(fd)


def bare_accepts(port: tcp.Port) -> Iterator[tuple[int, tuple]]:
    """Up to BATCH new connections on ``port``, as descriptors and addresses, no socket objects.

    Python's ``socket.accept`` wraps each new socket in an object and turns its
    family and type into enums: a fifth of a short poem's CPU. On an accept
    error other than "none left" (EMFILE, EPERM, ...) this hands over to
    Twisted's own accept loop, which knows how to recover from each, and stops;
    running out of descriptors is first told to the port's notice, as the
    socket's own ``accept`` would (:mod:`poetrynow.servers.common.ports`).
    """
    accept = port.socket._accept  # type: ignore[union-attr]
    for _ in range(BATCH):
        try:
            connection = accept()
        except BlockingIOError:
            return
        except OSError as error:
            ports.SHORTAGE.noticed(error)
            tcp.Port.doRead(port)
            return
        yield connection


class BarePort(SharedPort):
    """A fast port's base: a :class:`~poetrynow.servers.common.ports.SharedPort` whose connections,
    accepted bare, can still be given to an ordinary transport."""

    def hand_over(self, fd: int, address: tuple, protocol: Protocol) -> None:
        """Give a connection accepted bare to an ordinary Twisted transport, as ``tcp.Port.doRead`` would."""
        # From here on the descriptor is the transport's: if none can be made of it, it is
        # closed here, once (a socket object that owns it closes it itself), and the error raised.
        try:
            skt = socket.socket(self.addressFamily, socket.SOCK_STREAM, 0, fd)
        except OSError:
            os.close(fd)
            raise
        try:
            if len(address) == 4:  # IPv6: keep the scope id, as Twisted does
                host = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
                address = (host[0], *address[1:])
            protocol.factory = self.factory
            session = self.sessionno
            self.sessionno = session + 1
            transport = self.transport(skt, protocol, address, self, session, self.reactor)
        except BaseException:
            skt.close()
            raise
        protocol.makeConnection(transport)


class OneWritePort(BarePort):
    """A TCP listening port whose factory's answer goes out in the accept loop itself."""

    factory: Any
    #: How an answer is written to a new socket's descriptor (a test can make it short).
    write_answer = staticmethod(os.write)
    #: Answers up to this many bytes are written in the accept loop; longer ones go the
    #: ordinary way. Set from the socket's send buffer when listening.
    quick_limit = 0

    def startListening(self):
        BarePort.startListening(self)
        self._log_prefix = tcp.Port.logPrefix(self)
        # The accepted sockets are blocking (accept4 gets no SOCK_NONBLOCK from Python)
        # and wrapping each in a socket object to make it non-blocking costs a syscall
        # and an object. Instead they inherit, from the listening socket, a send timeout
        # of one clock tick: a write that could not go out at once returns short after
        # a few milliseconds at worst, instead of stalling the reactor. An answer under
        # half the send buffer goes out at once into a new socket's empty buffer.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, SEND_TIMEOUT)
        buffer = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.quick_limit = min(buffer // 2, QUICK_LIMIT)

    def logPrefix(self) -> str:
        # The reactor asks on every wake-up; tcp.Port works the name out each time.
        return self._log_prefix

    def doRead(self):
        # Unlike tcp.Port.doRead, nothing here is guarded by Twisted: what escapes reaches
        # the reactor, which would stop listening. A bug costs one client (below) or,
        # outside any client, this one wake-up.
        try:
            factory = self.factory
            answer = factory.answer_now()
            if answer is None or len(answer) > self.quick_limit:
                return tcp.Port.doRead(self)
            self._answer_each(answer, factory.answered)
        except Exception:
            log.failure("A bug while accepting on {port}; the port goes on listening", port=self._log_prefix)
        return None

    def _answer_each(self, answer: bytes, answered: Any) -> None:
        size = len(answer)
        write = self.write_answer
        for fd, address in bare_accepts(self):
            try:
                try:
                    sent = write(fd, answer)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    # Reset (or shut) before a byte went out: nothing to answer, nobody to tell.
                    os.close(fd)
                    continue
                if answered is not None:
                    answered(address, size)
                if sent == size:
                    close_cleanly(fd)
                else:
                    fd, handed = -1, fd
                    self.hand_over(handed, address, TheRest(answer, sent))
            except Exception:
                log.failure(BUG, peer=peer_of(address))
                if fd >= 0:
                    reset_fd(fd)
