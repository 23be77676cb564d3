"""What the relay asks of a Twisted TCP transport beyond its interfaces: what it still holds, and a send now.

A relayed byte that meets no delay should cost one recv and one send. Through
``transport.write`` alone it costs more: the transport keeps it for the next
turn of the reactor, registers for writing and unregisters again, joins the
reads of a turn into one string, and pauses the reader when two reads are
waiting (docs/benchmarks.md, the relay's user-space path). :func:`send_now`
gives the bytes to the socket at once when the transport holds nothing (so
nothing is overtaken) and hands it only what the socket did not take, so
Twisted's buffer, flow control and error handling still see every byte the
socket refused. :data:`READ_SIZE` is how much a relayed socket reads at once.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.interfaces import ISSLTransport

#: What a relayed transport reads at once (Twisted's ``bufferSize``, 64 KiB by default): a
#: stream costs a quarter of the reads, sends and wake-ups. It is also the writer's pause
#: threshold, so a slow reader's direction holds at most about this much in the transport.
READ_SIZE = 1 << 18


def is_tls(transport: Any) -> bool:
    """Whether ``transport`` is TLS (Twisted's TLS protocol provides ISSLTransport, through INegotiated)."""
    return bool(ISSLTransport.providedBy(transport))


def buffered(transport: Any) -> int | None:
    """The bytes Twisted's ``transport`` holds, not yet given to its socket; None if it cannot say.

    Twisted has no public way to ask. A TCP transport (``abstract.FileDescriptor``) keeps
    them in ``dataBuffer`` (from ``offset``) and a list whose length is ``_tempDataLen``:
    a private name, read here only, guarded (docs/design.md): anything else about them
    gives None, and the caller goes through ``transport.write`` (and never splices).
    """
    if is_tls(transport):
        return None  # what it holds is before TLS: its TCP transport's count is of other bytes
    try:
        held = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except (AttributeError, TypeError):
        return None
    return held if isinstance(held, int) and held >= 0 else None


def send_now(transport: Any, data: bytes) -> None:
    """Write ``data`` to ``transport``: to its socket at once when it holds nothing, the rest (or all
    of it, on any doubt) through ``transport.write``, which also meets any error the socket has."""
    sent = 0
    sock = handle(transport)
    if sock is not None and buffered(transport) == 0:
        try:
            sent = sock.send(data)
        except OSError:  # full (EAGAIN), or reset: Twisted's own write finds out, as ever
            sent = 0
    if sent < len(data):
        transport.write(data[sent:] if sent else data)


def handle(transport: Any) -> Any:
    """The socket of a connected TCP transport that is not closing (``ISystemHandle``), else None."""
    if not getattr(transport, "connected", False) or getattr(transport, "disconnecting", True):
        return None
    try:
        sock = transport.getHandle()
    except AttributeError:  # not a socket transport, or one whose connection is gone
        return None
    # A socket of the kernel's only: a TLS transport's handle is its TLS connection, whose bytes
    # must go through Twisted's TLS layer, never straight to the socket.
    if not isinstance(sock, socket.socket) or is_tls(transport):
        return None
    return sock
