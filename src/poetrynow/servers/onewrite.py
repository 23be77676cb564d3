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

The slow server's fast path (:class:`~poetrynow.servers.slow.SlowPort`) shares
the pieces: :func:`bare_accepts` (new connections as descriptors, no socket
objects), :func:`send_now` and :func:`close_now` (a transport's write and close,
at once when nothing waits), :class:`SharedPort` (SO_REUSEPORT) and
:func:`log_info` (a log line for less).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

#: Connections accepted per call of doRead before yielding to the rest of the loop.
BATCH = 256
#: A rest at least this long goes out through a pull producer, slice by slice.
STREAM_THRESHOLD = 4 << 20
SLICE = 64 << 10

#: The longest answer written in the accept loop (and at most half the send buffer).
QUICK_LIMIT = 64 << 10
#: Transports whose ``socket`` is the connection itself (not TLS or another wrapper).
RAW_TRANSPORTS = frozenset({tcp.Server, tcp.Client, unix.Server, unix.Client})
SEND_TIMEOUT = struct.pack("ll", 0, 1)  # one microsecond, which the kernel rounds up to a tick


@implementer(IPullProducer)
class SliceProducer:
    """Feeds one client a large answer slice by slice, as its transport asks, then closes."""

    def __init__(self, data: bytes, transport: Any, offset: int = 0):
        self.view = memoryview(data)
        self.offset = offset
        self.transport = transport

    def resumeProducing(self):
        chunk = self.view[self.offset : self.offset + SLICE]
        self.offset += len(chunk)
        self.transport.write(chunk.tobytes())
        if self.offset >= len(self.view):
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def stopProducing(self):
        self.offset = len(self.view)


def send_rest(transport: Any, data: bytes, offset: int = 0) -> None:
    """Write ``data[offset:]`` to ``transport`` and close it; a long rest goes by a producer."""
    if len(data) - offset >= STREAM_THRESHOLD:
        transport.registerProducer(SliceProducer(data, transport, offset), False)
        return
    transport.write(data[offset:] if offset else data)
    transport.loseConnection()


class TheRest(Protocol):
    """The protocol of a connection the kernel did not take whole: send the rest, close."""

    def __init__(self, data: bytes, sent: int):
        self.data, self.sent = data, sent

    def connectionMade(self):
        send_rest(self.transport, self.data, self.sent)


def log_info(logger: Logger, format: str, **fields: object) -> None:
    """What ``logger.info(format, **fields)`` does, for less: the line per client.

    ``Logger.emit`` checks the level against a freshly sorted list of levels on
    every call; an info event needs no check. The event is the same dict, handed
    to the same observer.
    """
    fields.update(
        log_logger=logger,
        log_level=LogLevel.info,
        log_namespace=logger.namespace,
        log_source=logger.source,
        log_format=format,
        log_time=time.time(),
    )
    logger.observer(fields)


def _bare_and_idle(transport: Any) -> bool:
    """Whether the transport's socket is the connection itself, open, with nothing buffered."""
    return (
        type(transport) in RAW_TRANSPORTS
        and not transport._tempDataLen
        and not transport.dataBuffer
        and transport.connected
        and not transport.disconnecting
    )


def bare_accepts(port: tcp.Port) -> Iterator[tuple[int, tuple]]:
    """Up to BATCH new connections on ``port``, as descriptors and addresses, no socket objects.

    Python's ``socket.accept`` wraps each new socket in an object and turns its
    family and type into enums: a fifth of a short poem's CPU. On an accept
    error other than "none left" (EMFILE, EPERM, ...) this hands over to
    Twisted's own accept loop, which knows how to recover from each, and stops.
    """
    accept = port.socket._accept  # type: ignore[union-attr]
    for _ in range(BATCH):
        try:
            connection = accept()
        except BlockingIOError:
            return
        except OSError:
            tcp.Port.doRead(port)
            return
        yield connection


def send_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, but straight into the socket when nothing waits before it.

    A transport's write buffers the bytes and registers for writability; the
    reactor wakes on the next pass to send them and unregisters again: two epoll
    changes and a wake-up per write. A slow server writes a small chunk to each
    client in turn, into a socket whose kernel buffer is empty nearly always, so
    it sends at once; only what the kernel does not take goes through the
    transport, whose buffering, producer pausing and error handling stay as
    they were. TLS and other wrapped transports always take the ordinary path.
    """
    if _bare_and_idle(transport):
        try:
            sent = transport.socket.send(data)
        except OSError:  # full (BlockingIOError) or gone: the transport finds out its own way
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def close_now(transport: Any) -> None:
    """``transport.loseConnection()``, at once when nothing is left to send.

    loseConnection stops reading, registers for writability and waits for the
    reactor's next pass to find the buffer empty, send nothing, and only then
    close. With the buffer already empty, this does at once what that pass
    would: take the transport off the reactor and tell it the connection is done
    (a clean close: FIN, then the protocol's connectionLost).
    """
    if _bare_and_idle(transport) and transport.producer is None:
        reactor = transport.reactor
        reactor.removeReader(transport)
        reactor.removeWriter(transport)
        transport.connectionLost(Failure(ConnectionDone("Connection was closed cleanly.")))
        return
    transport.loseConnection()


def peer_of(address: tuple) -> str:
    """``host:port`` for a log line, as :func:`~poetrynow.servers.listen.peer_name` words it."""
    return f"{address[0]}:{address[1]}"


class SharedPort(tcp.Port):
    """A TCP listening port that may share its port number with other processes (SO_REUSEPORT).

    One process cannot keep more connections than its open-file limit; several
    processes, each with a port of this kind bound to the same number, can, and
    the kernel spreads the new connections among them.
    """

    reuse_port = False

    def createInternetSocket(self):
        skt = tcp.Port.createInternetSocket(self)
        if self.reuse_port:
            skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return skt

    def hand_over(self, fd: int, address: tuple, protocol: Protocol) -> None:
        """Give a connection accepted bare to an ordinary Twisted transport, as ``tcp.Port.doRead`` would."""
        skt = socket.socket(self.addressFamily, socket.SOCK_STREAM, 0, fd)
        if len(address) == 4:  # IPv6: keep the scope id, as Twisted does
            host = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
            address = (host[0], *address[1:])
        protocol.factory = self.factory
        session = self.sessionno
        self.sessionno = session + 1
        transport = self.transport(skt, protocol, address, self, session, self.reactor)
        protocol.makeConnection(transport)


class OneWritePort(SharedPort):
    """A TCP listening port whose factory's answer goes out in the accept loop itself."""

    factory: Any
    #: How an answer is written to a new socket's descriptor (a test can make it short).
    write_answer = staticmethod(os.write)
    #: Answers up to this many bytes are written in the accept loop; longer ones go the
    #: ordinary way. Set from the socket's send buffer when listening.
    quick_limit = 0

    def startListening(self):
        SharedPort.startListening(self)
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
        factory = self.factory
        answer = factory.answer_now()
        if answer is None or len(answer) > self.quick_limit:
            return tcp.Port.doRead(self)
        size = len(answer)
        answered = factory.answered
        write, close = self.write_answer, os.close
        for fd, address in bare_accepts(self):
            try:
                sent = write(fd, answer)
            except BlockingIOError:
                sent = 0
            except OSError:
                # Reset (or shut) before a byte went out: nothing to answer, nobody to tell.
                close(fd)
                continue
            if answered is not None:
                answered(address, size)
            if sent == size:
                close(fd)
            else:
                self.hand_over(fd, address, TheRest(answer, sent))
        return None
