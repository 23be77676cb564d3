"""The relay's send now (``relay.transport.send_now``): straight to the socket only when nothing waits.

A relayed chunk goes to the writer's socket at once when Twisted's transport holds
nothing of it, and whatever the socket does not take (all of it, when the socket is
full or gone, or the transport is closing or holds bytes) goes through
``transport.write``, so no byte overtakes another and Twisted still meets every
error. Fakes here; the relay tests stream real bytes through both paths.
"""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport

from poetrynow.relay.transport import READ_SIZE, buffered, send_now
from tests.test_relay import Client, RelayCase, connect
from tests.time_limit import SynchronousTestCase


class Sock:
    """A socket that takes ``takes`` bytes of each send, or raises ``error``."""

    def __init__(self, takes: int | None = None, error: OSError | None = None):
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


class SendNowTests(SynchronousTestCase):
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
