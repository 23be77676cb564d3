"""The relay's send now (``relay.transport.send_now``): straight to the socket only when nothing waits.

A relayed chunk goes to the writer's socket at once when Twisted's transport holds
nothing of it, and whatever the socket does not take (all of it, when the socket is
full or gone, or the transport is closing or holds bytes) goes through
``transport.write``, so no byte overtakes another and Twisted still meets every
error. Fakes here; the relay tests stream real bytes through both paths.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import ClassVar

from twisted.internet import defer, protocol, reactor
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from poetrynow.relay.transport import READ_SIZE, buffered, send_now
from tests.test_relay import Client, RelayCase, connect
from tests.time_limit import SynchronousTestCase


class Sock(socket.socket):
    """A socket that takes ``takes`` bytes of each send, or raises ``error`` (a real socket object,
    never connected: send_now gives bytes only to the kernel's sockets)."""

    made: ClassVar[list[socket.socket]] = []

    def __init__(self, takes: int | None = None, error: OSError | None = None):
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        Sock.made.append(self)
        self.takes, self.error, self.sent = takes, error, b""

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        taken = data if self.takes is None else data[: self.takes]
        self.sent += taken
        return len(taken)


class Transport:
    """Twisted's TCP transport as send_now sees it."""

    def __init__(self, sock: Sock | None = None, held: int = 0):
        self.sock = sock or Sock()
        self.connected, self.disconnecting = True, False
        self.dataBuffer, self.offset, self._tempDataLen = b"", 0, held
        self.written: list[bytes] = []

    def getHandle(self) -> Sock:
        if self.sock is None:
            raise AttributeError("socket")
        return self.sock

    def write(self, data: bytes) -> None:
        self.written.append(data)


@implementer(ISSLTransport)
class TLSTransport(Transport):
    """A TLS transport: its handle is a socket here, yet its bytes must go through the TLS layer."""


class SendNowTests(SynchronousTestCase):
    def tearDown(self) -> None:
        while Sock.made:
            Sock.made.pop().close()

    def test_an_empty_transport_gives_all_to_the_socket(self) -> None:
        transport = Transport()
        send_now(transport, b"whole chunk")
        self.assertEqual((transport.sock.sent, transport.written), (b"whole chunk", []))

    def test_what_the_socket_refuses_goes_through_write(self) -> None:
        transport = Transport(Sock(takes=4))
        send_now(transport, b"part and rest")
        self.assertEqual((transport.sock.sent, transport.written), (b"part", [b" and rest"]))

    def test_a_full_or_broken_socket_leaves_it_all_to_write(self) -> None:
        for error in (BlockingIOError(), ConnectionResetError(), BrokenPipeError()):
            transport = Transport(Sock(error=error))
            send_now(transport, b"chunk")
            self.assertEqual(transport.written, [b"chunk"], error)

    def test_bytes_held_by_the_transport_are_never_overtaken(self) -> None:
        transport = Transport(held=3)
        send_now(transport, b"later")
        self.assertEqual((transport.sock.sent, transport.written), (b"", [b"later"]))

    def test_a_closing_gone_or_foreign_transport_is_only_written(self) -> None:
        closing = Transport()
        closing.disconnecting = True
        gone = Transport()
        gone.sock = None  # type: ignore[assignment]  # (its connection lost: getHandle fails)
        lost = Transport()
        lost.connected = False
        for transport in (closing, gone, lost):
            send_now(transport, b"chunk")
            self.assertEqual(transport.written, [b"chunk"])
        tls = TLSTransport()
        send_now(tls, b"chunk")
        self.assertEqual((tls.sock.sent, tls.written), (b"", [b"chunk"]))
        not_a_socket = Transport()
        not_a_socket.sock = SimpleNamespace(send=len)  # type: ignore[assignment]  # (pyOpenSSL's has send)
        send_now(not_a_socket, b"chunk")
        self.assertEqual(not_a_socket.written, [b"chunk"])
        strings = StringTransport()
        send_now(strings, b"chunk")
        self.assertEqual(strings.value(), b"chunk")
        self.assertIsNone(buffered(strings))


class RelayedSocketsTests(RelayCase):
    @defer.inlineCallbacks
    def test_both_relayed_transports_read_in_large_reads(self):
        """Each relayed socket reads READ_SIZE at once, not Twisted's 64 KiB."""
        relay = yield self.relay(self.echo())
        client = Client(b"ping", half_close=False)
        yield connect(relay.address[1], client)
        waited = 0.0
        while client.received != b"ping":  # (a deadline for a hang, not a timing)
            self.assertLess(waited, 10.0, "the echo never came back")
            yield deferLater(reactor, 0.005, lambda: None)
            waited += 0.005
        (connection,) = relay.relay.connections
        sides = (connection.client, connection.upstream)
        self.assertEqual({side.transport.bufferSize for side in sides}, {READ_SIZE})
        client.transport.loseConnection()
        yield client.ended


class Silent(protocol.Protocol):
    """Reads nothing until told: its peer's bytes pile up in the kernel, then in Twisted."""

    def connectionMade(self):
        self.transport.pauseProducing()
        self.factory.made.callback(self)


class RealTransportTests(RelayCase):
    """buffered() read against a real Twisted TCP transport: a canary for the private names it reads."""

    @defer.inlineCallbacks
    def test_what_twisted_holds_is_counted_and_drains_to_nothing(self):
        factory = protocol.Factory.forProtocol(Silent)
        factory.made = defer.Deferred()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Client(b"", half_close=False)
        yield connect(port.getHost().port, client)
        server = yield factory.made
        self.assertEqual(buffered(client.transport), 0)
        client.transport.write(b"x" * (64 << 20))  # more than any loopback socket pair buffers
        waited = 0.0
        while not buffered(client.transport):  # (deadlines for a hang, not timings)
            self.assertLess(waited, 10.0, "Twisted never held a byte")
            yield deferLater(reactor, 0.005, lambda: None)
            waited += 0.005
        self.assertGreater(buffered(client.transport), 0)
        server.transport.resumeProducing()
        while buffered(client.transport):
            self.assertLess(waited, 30.0, "what Twisted held never drained")
            yield deferLater(reactor, 0.005, lambda: None)
            waited += 0.005
        self.assertEqual(buffered(client.transport), 0)
        client.transport.loseConnection()
        server.transport.loseConnection()
        yield client.ended
