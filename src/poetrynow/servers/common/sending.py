"""Sending a whole answer on a transport, then ending: the one thing a poetry server says.

A short answer is one ``write`` and the protocol's
:meth:`~poetrynow.servers.common.ending.Answering.finish` (a FIN, then the close once
the client closes too). A long one (a poem of
megabytes) goes by a pull producer, slice by slice as the transport asks for
more, so that a thousand clients of a large poem cost a thousand small buffers,
not a thousand copies of the poem in the transports' write queues (Part 16's
advice: let the transport say when it wants more).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from poetrynow.servers.common.ending import Answering

#: A rest at least this long goes out through a pull producer, slice by slice.
STREAM_THRESHOLD = 4 << 20
SLICE = 64 << 10


@implementer(IPullProducer)
class SliceProducer:
    """Feeds one client a large answer slice by slice, as its transport asks, then closes."""

    def __init__(self, data: bytes, protocol: Answering, offset: int = 0):
        self.view = memoryview(data)
        self.offset = offset
        self.protocol = protocol
        self.transport: Any = protocol.transport

    def resumeProducing(self):
        chunk = self.view[self.offset : self.offset + SLICE]
        self.offset += len(chunk)
        self.transport.write(chunk.tobytes())
        if self.offset >= len(self.view):
            self.transport.unregisterProducer()
            self.protocol.finish()

    def stopProducing(self):
        self.offset = len(self.view)


def send_rest(protocol: Answering, data: bytes, offset: int = 0) -> None:
    """Write ``data[offset:]`` on ``protocol``'s transport, then finish; a long rest goes by a producer."""
    transport = protocol.transport
    if len(data) - offset >= STREAM_THRESHOLD:
        transport.registerProducer(SliceProducer(data, protocol, offset), False)
        return
    transport.write(data[offset:] if offset else data)
    protocol.finish()
