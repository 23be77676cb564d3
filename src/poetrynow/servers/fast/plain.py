"""The fast poetry server: the whole poem at once, then close (Parts 15-16).

The plain edition is the lesson: a Service that holds the poem, a Factory that
builds a Protocol per client, and a Protocol whose ``connectionMade`` writes the
poem and closes (:func:`~poetrynow.servers.common.sending.send_rest`, which streams a
large poem by a producer). In the fast edition, on TCP, a
:class:`~poetrynow.servers.fast.onewrite.OneWritePort` asks the factory for
the answer (``answer_now``) and writes it in its accept loop: one send per
client, no transport object.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from poetrynow.interfaces import IPoetryService
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.servers.common.ending import Answering
from poetrynow.servers.common.guard import costs_one_connection
from poetrynow.servers.common.listen import peer_name
from poetrynow.servers.common.logline import log_info, peer_of
from poetrynow.servers.common.sending import send_rest
from poetrynow.servers.common.startup import cannot_start

log = Logger()


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


CLIENT_LINE = "sending {nbytes} bytes of poetry to {peer}"


class PoetryProtocol(Answering):
    """Writes the whole poem, then ends (a FIN, the close when the client closes): every client
    of the plain edition, and of the fast one where no OneWritePort listens (a Unix socket, TLS)."""

    @costs_one_connection
    def connectionMade(self):
        poem = self.factory.service.poem
        if self.factory.log_clients:
            log_info(log, CLIENT_LINE, nbytes=len(poem), peer=peer_name(self.transport.getPeer()))
        send_rest(self, poem)


class PoetryFactory(Factory):
    protocol = PoetryProtocol
    #: The fast edition's port: on TCP, answered in the accept loop.
    fast_port = "one-write"
    noisy = False

    def __init__(self, service: PoetryService, log_clients: bool = True, plain: bool = False):
        self.service = service
        self.plain = plain
        # Off with --quiet: a log event per client is a tenth of the CPU a poem costs.
        self.log_clients = log_clients
        self.answered = self._log_client if log_clients else None

    # What a OneWritePort asks: the whole answer, at once, to every client, and
    # whom to tell about each (nobody, with --quiet).
    def answer_now(self) -> bytes:
        return self.service.poem

    def _log_client(self, address: tuple, nbytes: int) -> None:
        log_info(log, CLIENT_LINE, nbytes=nbytes, peer=peer_of(address))
