"""The fast poetry server: the whole poem at once, then close (Parts 15-16).

A poem of a few megabytes or more is streamed to each client by a pull producer
in 64 KiB slices, so a thousand clients of a large poem cost a thousand small
buffers, not a thousand copies of the poem in the transports' write queues.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from poetrynow.interfaces import IPoetryService
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.servers.listen import peer_name
from poetrynow.servers.startup import cannot_start

STREAM_THRESHOLD = 4 << 20  # bytes; below this one write is cheaper than a producer
SLICE = 64 << 10


@implementer(IPoetryService)
class PoetryService(service.Service):
    """Holds the poem; reads it when started, so a bad path stops start-up."""

    log = Logger()

    def __init__(self, poem: str):
        self.poem_name = poem
        self.poem: bytes = b""
        self.loaded = False

    def privilegedStartService(self):
        # twistd calls this on the whole tree before startService: the poem is
        # read here, so that it is read before the listener beside it binds.
        self.load()
        service.Service.privilegedStartService(self)

    def startService(self):
        self.load()
        service.Service.startService(self)

    def load(self) -> None:
        """Read the poem, once; a poem that cannot be read is one critical log line and PoemNotFound."""
        if self.loaded:
            return
        try:
            self.poem = load_poem(self.poem_name).data
        except PoemNotFound as problem:
            raise cannot_start(problem) from None
        self.loaded = True
        self.log.info("Loaded {poem} ({nbytes} bytes).", poem=self.poem_name, nbytes=len(self.poem))


@implementer(IPullProducer)
class PoemProducer:
    """Feeds one client a large poem slice by slice, as its transport asks."""

    def __init__(self, poem: bytes, transport):
        self.view = memoryview(poem)
        self.offset = 0
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


class PoetryProtocol(Protocol):
    transport: Any  # a TCP transport, which can also abort and take a producer

    log = Logger()

    def connectionMade(self):
        poem = self.factory.service.poem
        if self.factory.log_clients:
            self.log.info(
                "sending {nbytes} bytes of poetry to {peer}",
                nbytes=len(poem),
                peer=peer_name(self.transport.getPeer()),
            )
        if len(poem) >= STREAM_THRESHOLD:
            self.transport.registerProducer(PoemProducer(poem, self.transport), False)
        else:
            self.transport.write(poem)
            self.transport.loseConnection()


class PoetryFactory(Factory):
    protocol = PoetryProtocol
    noisy = False

    def __init__(self, service: PoetryService, log_clients: bool = True):
        self.service = service
        # Off with --quiet: a log event per client is a tenth of the CPU a poem costs.
        self.log_clients = log_clients
