"""Faults on demand: each connection's plan, without I/O, and the slow server carrying it out
under task.Clock (microseconds, no sleeping)."""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from poetrynow.faults import CLOSE, RESET, STALL, Faults, plan
from poetrynow.servers.slow.plain import SlowPoetryFactory
from tests.time_limit import SynchronousTestCase
from tests.twisted_support import poetry_service

POEM = bytes(range(65, 91)) * 4  # 104 bytes: 11 chunks of 10 (the last of 4)


class PlanTests(SynchronousTestCase):
    def test_no_faults_is_the_schedule(self):
        made = plan(POEM, 10, 0.5)
        self.assertEqual(b"".join(made.chunks), POEM)
        self.assertEqual(len(made.chunks), 11)
        self.assertEqual(made.dues, tuple(i * 0.5 for i in range(12)))  # the close one delay after
        self.assertEqual((made.ending, made.faulty), (CLOSE, False))
        self.assertEqual(made.fate(len(POEM)), "whole poem, 104 bytes")

    def test_rate_paces_by_bandwidth(self):
        made = plan(POEM, 10, 99.0, rate=100.0)  # 10 bytes at 100 B/s: 0.1 s a chunk, whatever the delay
        self.assertAlmostEqual(made.dues[1], 0.1)
        self.assertAlmostEqual(made.dues[-1], 1.04)  # ten chunks of 10, one of 4

    def test_close_after_an_exact_byte_count(self):
        made = plan(POEM, 10, 0.5, Faults(close_after=25))
        self.assertEqual([len(c) for c in made.chunks], [10, 10, 5])  # cut at the 25th byte
        self.assertEqual((made.ending, made.dues[-1]), (CLOSE, 1.5))
        self.assertEqual(made.fate(len(POEM)), "closed after 25 of 104 bytes")

    def test_reset_after(self):
        made = plan(POEM, 10, 0.5, Faults(reset_after=30))
        self.assertEqual((made.sent, made.ending), (30, RESET))
        self.assertEqual(made.fate(len(POEM)), "reset after 30 bytes")

    def test_stall_for_ever_or_for_a_while(self):
        held = plan(POEM, 10, 0.5, Faults(stall_after=20))
        self.assertEqual((held.sent, held.ending), (20, STALL))
        self.assertEqual(held.fate(len(POEM)), "stalled after 20 bytes, until the client gives up")
        paused = plan(POEM, 10, 0.5, Faults(stall_after=20, stall_for=3.0))
        self.assertEqual(b"".join(paused.chunks), POEM)
        self.assertEqual(paused.dues[1:4], (0.5, 4.0, 4.5))  # the third chunk three seconds late
        self.assertEqual(paused.ending, CLOSE)

    def test_slow_close_and_accept_delay(self):
        made = plan(POEM, 10, 0.5, Faults(slow_close=2.0, accept_delay=1.0))
        self.assertEqual(made.dues[0], 1.0)  # the first byte a second after the connection
        self.assertEqual(made.dues[-1], 1.0 + 11 * 0.5 + 2.0)

    def test_jitter_stays_within_its_bounds_and_keeps_the_order(self):
        made = plan(POEM, 10, 0.5, Faults(jitter=0.2, seed=7))
        gaps = [b - a for a, b in zip(made.dues, made.dues[1:])]
        self.assertTrue(all(0.3 - 1e-9 <= gap <= 0.7 + 1e-9 for gap in gaps), gaps)
        self.assertNotEqual(gaps, [0.5] * len(gaps))

    def test_combined(self):
        made = plan(POEM, 10, 0.5, Faults(accept_delay=1.0, stall_after=15, stall_for=2.0, reset_after=40))
        self.assertEqual([len(c) for c in made.chunks], [10, 5, 10, 10, 5])
        self.assertEqual(made.dues[:4], (1.0, 1.5, 4.0, 4.5))
        self.assertEqual((made.sent, made.ending), (40, RESET))

    def test_the_seed_makes_the_same_connections_fail_the_same_way(self):
        faults = Faults(jitter=0.3, reset_after=50, faulty=0.5, seed=42)
        first = [plan(POEM, 10, 0.5, faults, n) for n in range(1, 50)]
        again = [plan(POEM, 10, 0.5, faults, n) for n in range(1, 50)]
        self.assertEqual(first, again)
        other = [
            plan(POEM, 10, 0.5, Faults(jitter=0.3, reset_after=50, faulty=0.5, seed=43), n)
            for n in range(1, 50)
        ]
        self.assertNotEqual(first, other)

    def test_a_quarter_of_400_connections_is_faulty(self):
        faults = Faults(reset_after=10, faulty=0.25, seed=1)
        faulty = sum(plan(POEM, 10, 0.5, faults, n).faulty for n in range(1, 401))
        self.assertTrue(70 <= faulty <= 130, faulty)  # 100 expected; 3 standard deviations is 26
        self.assertEqual(sum(plan(POEM, 10, 0.5, faults, n).ending == RESET for n in range(1, 401)), faulty)


class Client:
    def __init__(self, factory):
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5123))
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    @property
    def got(self) -> bytes:
        return self.transport.value()


class ServerUnderClockTests(SynchronousTestCase):
    """The slow server carrying each fault out, on task.Clock."""

    def serve(self, **faults) -> tuple[task.Clock, SlowPoetryFactory]:
        clock = task.Clock()
        return clock, SlowPoetryFactory(poetry_service(POEM), 10, 0.5, clock=clock, faults=Faults(**faults))

    def test_close_after(self):
        clock, factory = self.serve(close_after=25)
        client = Client(factory)
        clock.advance(1.0)
        self.assertEqual(client.got, POEM[:25])
        self.assertFalse(client.transport.disconnecting)
        clock.advance(0.5)  # one delay after the last byte
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(client.got, POEM[:25])

    def test_reset_after(self):
        clock, factory = self.serve(reset_after=20)
        client = Client(factory)
        clock.advance(1.0)
        self.assertEqual(client.got, POEM[:20])
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(client.protocol.aborted)

    def test_stall_holds_the_connection_open_and_sends_nothing(self):
        clock, factory = self.serve(stall_after=30)
        client = Client(factory)
        clock.advance(100)
        self.assertEqual(client.got, POEM[:30])
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])  # nothing more is coming
        factory.stopFactory()  # the server stopping cuts it short, as any poem under way
        self.assertEqual(factory.cut_short, 1)

    def test_accept_delay_and_slow_close(self):
        clock, factory = self.serve(accept_delay=2.0, slow_close=3.0)
        client = Client(factory)
        self.assertEqual(client.got, b"")
        clock.advance(2.0)
        self.assertEqual(client.got, POEM[:10])
        clock.advance(5.5)  # the poem's last byte at 2 + 5.0 s
        self.assertEqual(client.got, POEM)
        clock.advance(2.9)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(0.2)  # closed at 2 + 5.5 (one delay after the last chunk) + 3.0
        self.assertTrue(client.transport.disconnecting)

    def test_each_fate_is_one_line(self):
        from twisted.logger import capturedLogs, formatEvent

        clock, factory = self.serve(reset_after=20)
        with capturedLogs() as logs:
            Client(factory)
            clock.advance(2)
        fates = [formatEvent(e) for e in logs if (e.get("log_format") or "").startswith("client ")]
        self.assertEqual(fates, ["client 127.0.0.1:5123: reset after 20 bytes"])
