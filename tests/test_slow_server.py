"""The concurrent slow server's schedule under task.Clock: microseconds, no sleeping."""

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from poetrynow.servers.slow.fast import Pacer
from poetrynow.servers.slow.plain import SlowPoetryFactory, SlowPoetryProtocol
from tests.time_limit import SynchronousTestCase
from tests.twisted_support import poetry_service

POEM = b"abcdefghijklmnopqrstuvwxy"  # 25 bytes: chunks of 10, 10, 5


class Client:
    def __init__(self, factory, port):
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    @property
    def got(self):
        return self.transport.value()

    @property
    def closed(self):
        return self.transport.disconnecting


class ConcurrentScheduleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.factory = SlowPoetryFactory(poetry_service(POEM), num_bytes=10, delay=1.0, clock=self.clock)

    def test_three_clients_each_on_their_own_schedule(self):
        a = Client(self.factory, 1)  # connects at 0.0
        self.clock.advance(0.25)
        b = Client(self.factory, 2)  # at 0.25
        self.clock.advance(0.25)
        c = Client(self.factory, 3)  # at 0.5
        self.assertEqual((a.got, b.got, c.got), (b"abcdefghij",) * 3)
        self.clock.advance(0.5)  # t = 1.0: only a's second chunk is due
        self.assertEqual((a.got, b.got, c.got), (POEM[:20], POEM[:10], POEM[:10]))
        self.clock.advance(0.25)  # 1.25: b's
        self.assertEqual(b.got, POEM[:20])
        self.assertEqual(c.got, POEM[:10])
        self.clock.advance(0.25)  # 1.5: c's
        self.assertEqual(c.got, POEM[:20])
        self.clock.advance(0.5)  # 2.0: a's last chunk
        self.assertEqual(a.got, POEM)
        self.assertFalse(a.closed)
        self.clock.advance(1.0)  # 3.0: a closes one delay after its last chunk
        self.assertTrue(a.closed)
        self.assertFalse(b.closed)
        self.clock.advance(0.5)  # 3.5: all done
        self.assertTrue(b.closed and c.closed)
        self.assertEqual((b.got, c.got), (POEM, POEM))

    def test_each_connection_has_its_own_timer(self):
        # The plain edition's design; the fast one's single timer is the Pacer's (below).
        clients = [Client(self.factory, port) for port in range(1, 101)]
        self.clock.advance(0.001)
        self.assertEqual(len(self.clock.getDelayedCalls()), 100)
        self.clock.advance(1.0)
        self.assertTrue(all(c.got == POEM[:20] for c in clients))
        self.assertEqual(len(self.clock.getDelayedCalls()), 100)

    def test_a_client_that_hangs_up_is_dropped(self):
        a = Client(self.factory, 1)
        b = Client(self.factory, 2)
        a.protocol.connectionLost(None)
        self.clock.advance(5)
        self.assertEqual(a.got, POEM[:10])
        self.assertEqual(b.got, POEM)
        self.assertTrue(b.closed)

    def test_a_client_that_stops_reading_is_not_sent_more(self):
        a = Client(self.factory, 1)
        a.protocol.pauseProducing()  # what the transport does when its buffer is full
        self.clock.advance(10)
        self.assertEqual(a.got, POEM[:10])
        a.protocol.resumeProducing()  # the next chunk now, then the old pace again
        self.assertEqual(a.got, POEM[:10])
        self.clock.advance(0)
        self.assertEqual(a.got, POEM[:20])
        self.clock.advance(0.99)
        self.assertEqual(a.got, POEM[:20])
        self.clock.advance(0.01)
        self.assertEqual(a.got, POEM)

    def test_stopping_the_factory_cancels_the_timer(self):
        Client(self.factory, 1)
        self.factory.stopFactory()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopping_mid_poem_aborts_the_connection_and_counts_it(self):
        midway = Client(self.factory, 1)
        done = Client(self.factory, 2)
        self.clock.advance(100)  # both whole by now...
        late = Client(self.factory, 3)  # ...but this one has its first chunk only
        done.protocol.connectionLost(None)
        self.factory.stopFactory()
        self.assertEqual(self.factory.cut_short, 1)
        self.assertTrue(late.transport.disconnecting)
        self.assertTrue(midway.protocol.served)


class ResumedTests(SynchronousTestCase):
    """The plain protocol taking over a poem the fast edition began on a bare socket."""

    def setUp(self):
        self.clock = task.Clock()
        self.factory = SlowPoetryFactory(poetry_service(POEM), num_bytes=10, delay=1.0, clock=self.clock)
        self.plan = self.factory.plan_for(1)

    def resumed(self, index: int, rest: bytes, holding: bool = False, start: float = 0.0) -> Client:
        client = Client.__new__(Client)
        client.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        protocol = SlowPoetryProtocol.resume(self.plan, start, index, rest, holding)
        protocol.factory = self.factory
        client.protocol = protocol
        protocol.makeConnection(client.transport)
        return client

    def test_the_rest_first_then_the_old_schedule(self):
        self.clock.advance(1.2)  # the bare client sent chunk 0 at 0 and part of chunk 1 at 1.0
        a = self.resumed(2, b"mnopqrst")  # what the kernel did not take of chunk 1
        self.assertEqual(a.got, b"mnopqrst")
        self.clock.advance(0.7)  # chunk 2 is due at 2.0, from the connection's start
        self.assertEqual(a.got, b"mnopqrst")
        self.clock.advance(0.1)
        self.assertEqual(a.got, b"mnopqrst" + POEM[20:])
        self.clock.advance(1.0)
        self.assertTrue(a.closed)
        self.assertTrue(a.protocol.served)
        a.protocol.connectionLost(None)  # what the transport does once the close is through
        self.assertEqual(self.factory.live, set())

    def test_paused_by_the_rest_it_resumes_at_the_old_pace_from_then(self):
        self.clock.advance(1.2)
        a = self.resumed(2, b"mnopqrst")
        a.protocol.pauseProducing()  # the rest filled the transport's buffer
        self.clock.advance(5)
        self.assertEqual(a.got, b"mnopqrst")
        a.protocol.resumeProducing()
        self.clock.advance(0)
        self.assertEqual(a.got, b"mnopqrst" + POEM[20:])

    def test_a_stalled_plan_holds_and_is_cut_short_at_the_stop(self):
        a = self.resumed(len(self.plan.chunks), b"", holding=True)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        a.protocol.pauseProducing()
        a.protocol.resumeProducing()
        self.assertEqual(self.clock.getDelayedCalls(), [])  # holding: nothing more is ever sent
        self.factory.stopFactory()
        self.assertEqual(self.factory.cut_short, 1)
        self.assertTrue(a.closed)

    def test_a_connection_lost_before_it_began_is_quiet(self):
        protocol = self.factory.buildProtocol(None)
        protocol.connectionLost(None)  # never made: nothing to cancel, nothing to log
        self.assertEqual(self.factory.live, set())


class PacerTests(SynchronousTestCase):
    def test_earlier_deadline_rearms_the_timer(self):
        clock = task.Clock()
        pacer = Pacer(clock)
        calls = []

        class Tick:
            def __init__(self, name):
                self.name = name

            def tick(self):
                calls.append((self.name, clock.seconds()))

        pacer.at(5.0, Tick("late"))
        pacer.at(1.0, Tick("early"))
        clock.advance(1)
        clock.advance(4)
        self.assertEqual(calls, [("early", 1.0), ("late", 5.0)])
