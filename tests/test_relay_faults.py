"""The relay's answers to a reviewer's faults (issue 25's follow-up): each test would have caught one.

A FIN passed on twice; a close that waited for ever on a peer that does not read;
limit_data ending the stream before later toxics let out what they held; fates
that moved with the data's reads; a port not free again in the same turn; the
API held by a slow client, or made to fail by deep JSON or huge numbers; queued
toxics writing into a full writer; the helpers' descriptors and waits.
"""

from __future__ import annotations

import json
import os
import socket
import time

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from poetrynow.relay import ApiError, Relay, Relays, make_toxic, updated_toxic
from poetrynow.relay.api import TOXIPROXY_VERSION
from poetrynow.relay.connection import Connection
from poetrynow.relay.kinds import STAGES
from poetrynow.relay.pipe import Direction
from poetrynow.relay.site import REQUEST_DEADLINE, faults_site
from poetrynow.relay.stages import Stage
from poetrynow.relay.testing import relay
from poetrynow.servers.common.ending import LINGER
from tests.support import ThreadedServer, exchange
from tests.test_relay import POEM, EachToxicTests, Flood, RelayCase
from tests.test_relay_toxics import Hooks, Received, StageCase
from tests.time_limit import SynchronousTestCase
from tests.twisted_support import listen


class FakeTransport:
    """A reader or writer transport: counts pauses and resumes, keeps what is written."""

    def __init__(self):
        self.producer = None
        self.pauses = self.resumes = 0
        self.written = bytearray()

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        self.pauses += 1

    def resumeProducing(self):
        self.resumes += 1

    def write(self, data):
        self.written += data


class FakeConnection:
    """What a direction needs of its connection, on a Clock."""

    open, ended = True, False

    def __init__(self):
        self.clock = Clock()
        self.fins = 0
        self.closes = 0

    def guarded(self, call, *args):
        call(*args)

    def finished(self, direction):
        self.fins += 1

    def close(self):
        self.closes += 1
        self.ended = True

    def reset(self):
        self.ended = True

    def tick(self):
        return 0

    def drained(self, direction):
        pass


def direction_with(
    *kinds: tuple[str, dict],
) -> tuple[Direction, FakeConnection, FakeTransport, FakeTransport]:
    connection, reader, writer = FakeConnection(), FakeTransport(), FakeTransport()
    direction = Direction(connection, reader, writer, paused=False)
    for kind, attributes in kinds:
        toxic = make_toxic({"type": kind, "attributes": attributes})
        direction.add(toxic, Random1(), Random1())
    return direction, connection, reader, writer


class Random1:
    """A chooser whose every draw is below any toxicity: the toxic always applies."""

    def random(self):
        return 0.0

    def uniform(self, low, high):
        return 0.0

    def randint(self, low, high):
        return 0


class DuplicateEofTests(SynchronousTestCase):
    def test_a_reader_is_never_resumed_after_its_eof_and_a_second_eof_is_ignored(self):
        direction, connection, reader, _ = direction_with(("slow_close", {"delay": 1000}))
        direction.data(b"x")
        direction.eof()  # the FIN waits in slow_close
        direction.pauseProducing()  # the writer fills: the reader is paused ...
        direction.resumeProducing()  # ... and, its EOF read, not resumed: Twisted would read it again
        self.assertEqual(reader.resumes, 0)
        direction.eof()  # (were it read again, it is the same FIN)
        self.assertEqual(len(connection.clock.getDelayedCalls()), 1)
        connection.clock.advance(1)
        self.assertEqual(connection.fins, 1)
        self.assertEqual(connection.clock.getDelayedCalls(), [])

    def test_slow_close_holds_one_fin(self):
        hooks = Hooks()
        stage = STAGES["slow_close"](hooks, {"delay": 100}, Random1())
        stage.next = received = Received(hooks.clock)
        stage.finish()
        stage.finish()
        hooks.clock.advance(0.1)
        hooks.clock.advance(1)
        self.assertEqual([(round(t, 3), data) for t, data in received.events], [(0.1, None)])
        self.assertEqual(hooks.clock.getDelayedCalls(), [])


class ChainOrderTests(RelayCase):
    @defer.inlineCallbacks
    def test_limit_data_then_latency_lets_the_allowed_bytes_arrive_then_closes(self):
        fixture = yield self.relay(self.talker(POEM))
        fixture.add("limit_data", bytes=1000)
        fixture.add("latency", latency=30)
        result = yield self.exchange(fixture.address[1])
        self.assertEqual(result, (POEM[:1000], "closed"))

    @defer.inlineCallbacks
    def test_timeout_closes_at_the_readers_fin_as_toxiproxys_does(self):
        fixture = yield self.relay(self.echo())
        fixture.add("timeout", timeout=0)  # the echo's answer dropped, its FIN a close
        result = yield self.exchange(fixture.address[1], b"hello")
        self.assertEqual(result, (b"", "closed"))


def writer_full(direction) -> bool:
    """The writer takes no more: its transport paused the direction (user space), the splice
    waits for its room (the kernel path), the pipe full, or a splice waits for the transport to
    empty first (Drained), which it never does for a client that never reads."""
    return (
        direction.writer_full
        or (direction.splice is not None and direction.splice.writing)
        or direction.drained_watch is not None
    )


class LingerTests(RelayCase):
    @defer.inlineCallbacks
    def flooded(self):
        """A relay on a Clock, flooding a client that never reads: (its fixture, the clock, the
        connection), once the relay's buffer to the client is full and the upstream paused."""
        factory = Factory.forProtocol(Flood)
        factory.flooding = []  # type: ignore[attr-defined]
        fixture = yield self.relay(listen(self, factory))
        clock = fixture.relay.clock = Clock()
        client = socket.socket()  # it never reads, and its small window keeps the relay's buffer full
        self.addCleanup(client.close)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(fixture.address)  # (on loopback, at once)
        flooding = factory.flooding  # type: ignore[attr-defined]
        yield EachToxicTests.until(self, lambda: bool(flooding) and flooding[0].paused)
        [connection] = fixture.relay.connections
        yield EachToxicTests.until(self, lambda: writer_full(connection.down))
        return fixture, clock, connection

    @defer.inlineCallbacks
    def test_a_peer_that_never_reads_is_aborted_a_linger_after_the_relay_closes(self):
        fixture, clock, connection = yield self.flooded()
        fixture.add("timeout", timeout=1000, stream="upstream")
        clock.advance(1)  # the timeout closes the connection, with what the client's side holds unsent
        self.assertTrue(connection.ended)
        yield EachToxicTests.until(self, lambda: connection.upstream.gone)
        fixture.add("latency", latency=5000)  # an ended connection takes no toxic, arms no timer
        self.assertEqual(len(clock.getDelayedCalls()), 1)  # the linger for the client's side
        clock.advance(LINGER - 0.1)
        self.assertIn(connection, fixture.relay.connections)
        clock.advance(0.1)
        yield EachToxicTests.until(self, lambda: not fixture.relay.connections)

    @defer.inlineCallbacks
    def test_a_lingering_connection_is_dropped_at_once_when_the_relay_is_disabled(self):
        fixture, clock, connection = yield self.flooded()
        connection.close()  # lingering: the client's side still holds what it could not send
        self.assertEqual(len(clock.getDelayedCalls()), 2)
        connection.drop()  # as disabling or deleting the relay does
        self.assertEqual(clock.getDelayedCalls(), [])  # no linger left to fire
        yield EachToxicTests.until(self, lambda: not fixture.relay.connections)


class Side:
    gone = False
    transport = None


class SeedTests(SynchronousTestCase):
    def fates(self, reads: int) -> list[type[Stage]]:
        """Connections 1..30's fates after an update, each having drawn jitter ``reads`` times."""
        seeded = Relay("seeded", "127.0.0.1:0", "127.0.0.1:1", reactor=Clock(), seed=11)
        toxic = make_toxic({"type": "latency", "toxicity": 0.5, "attributes": {"latency": 10, "jitter": 5}})
        fates = []
        for number in range(1, 31):
            connection = Connection(seeded, number, Side())  # type: ignore[arg-type]
            connection.open = True
            connection.down = Direction(connection, FakeTransport(), FakeTransport(), paused=False)
            connection.add(toxic)
            for _ in range(reads):
                connection.down.data(b"x")
            connection.update(updated_toxic(toxic, {"toxicity": 0.5}))
            [(_, stage)] = connection.down.stages
            fates.append(type(stage))
            connection.down.stop()
        return fates

    def test_fates_after_an_update_do_not_depend_on_how_many_reads_drew_jitter(self):
        one, many = self.fates(1), self.fates(40)
        self.assertEqual(one, many)
        self.assertEqual(set(one), {Stage, STAGES["latency"]})


class PortTests(RelayCase):
    @defer.inlineCallbacks
    def test_a_new_upstream_keeps_the_listening_port_and_a_move_waits_for_the_old_one(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        moving = relays.create({"name": "a", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{self.echo()}"})
        port = moving.port
        yield relays.update("a", {"upstream": f"127.0.0.1:{self.talker(b'new')}"})
        self.assertIs(moving.port, port)
        answer = yield self.exchange(int(moving.listen.rpartition(":")[2]))
        self.assertEqual(answer, (b"new", "closed"))
        # A stop and a start in one turn: the start waits for the port to close (not only on Linux).
        listen = moving.listen
        stopped, started = moving.stop(), moving.start()
        self.assertIsNone(moving.port)
        yield defer.gatherResults([stopped, started])
        self.assertEqual(moving.listen, listen)

    @defer.inlineCallbacks
    def test_a_populate_stopped_by_a_taken_port_lists_what_it_created(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        taken = relays.create({"name": "taken", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"})
        bodies = [
            {"name": "first", "upstream": "127.0.0.1:1"},
            {"name": "clash", "listen": taken.listen, "upstream": "127.0.0.1:1"},
            {"name": "never", "upstream": "127.0.0.1:1"},
        ]
        refused = yield self.assertFailure(relays.populate(bodies), ApiError)
        self.assertEqual(refused.status, 500)
        self.assertEqual([r.name for r in refused.created], ["first"])
        self.assertEqual(sorted(relays.all()), ["first", "taken"])

    def test_a_listen_host_is_an_ip_or_localhost(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        local = relays.create({"name": "local", "listen": "localhost:0", "upstream": "127.0.0.1:1"})
        self.assertTrue(local.listen.startswith("127.0.0.1:"))
        with self.assertRaises(ApiError) as caught:
            relays.create({"name": "named", "listen": "example.com:0", "upstream": "127.0.0.1:1"})
        self.assertEqual(caught.exception.status, 400)


class ApiFaultTests(SynchronousTestCase):
    """The API under a slow client, too many clients, and inputs that used to be a 500."""

    def setUp(self):
        from tests.test_faults_api import FakeRelays

        self.clock = Clock()
        self.site = faults_site(FakeRelays(), reactor=self.clock, max_connections=3)
        self.site.resource.handlers.relays.create({"name": "db", "upstream": "x:1"})

    def connect(self):
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        if channel is None:
            return None, None
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def test_a_request_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(self):
        channel, transport = self.connect()
        request = b"GET /version HTTP/1.1\r\nHost: api\r\n\r\n"
        for byte in request[:10]:
            channel.dataReceived(bytes([byte]))
            self.clock.advance(REQUEST_DEADLINE / 10 - 0.01)  # well within the idle timeout
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnected)  # aborted

    def test_requests_apart_on_one_connection_each_have_their_own_deadline(self):
        channel, transport = self.connect()
        for _ in range(3):
            channel.dataReceived(b"GET /version HTTP/1.1\r\nHost: api\r\n\r\n")
            self.clock.advance(REQUEST_DEADLINE + 1)
        self.assertFalse(transport.disconnected)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200"), 3)
        self.assertEqual(transport.value().count(TOXIPROXY_VERSION.encode()), 3)
        self.assertIn(b"X-Poetrynow-Version", transport.value())

    def test_connections_past_the_cap_are_refused_and_a_freed_one_is_taken_again(self):
        channels = [self.connect()[0] for _ in range(3)]
        self.assertEqual(self.connect(), (None, None))
        channels[0].connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(self.connect()[0])

    def test_a_connection_that_says_nothing_gives_its_place_back_at_the_deadline(self):
        silent = [self.connect() for _ in range(3)]
        self.assertEqual(self.connect(), (None, None))  # every place taken by a silent client
        self.clock.advance(REQUEST_DEADLINE + 0.1)  # not the minute of twisted.web's idle timeout
        for channel, transport in silent:
            self.assertTrue(transport.disconnected)
            channel.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(self.connect()[0])

    def answer(self, body: bytes) -> dict:
        channel, transport = self.connect()
        head = b"POST /proxies/db/toxics HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n" % len(body)
        channel.dataReceived(head + body)
        _, _, payload = transport.value().partition(b"\r\n\r\n")
        return json.loads(payload)

    def test_deep_json_and_a_huge_toxicity_are_400(self):
        self.assertEqual(self.answer(b"[" * 200_000)["status"], 400)
        huge = json.dumps({"type": "latency", "toxicity": 10**400}).encode()
        self.assertEqual(self.answer(huge)["status"], 400)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stream_in_any_case(self):
        self.assertEqual(make_toxic({"type": "latency", "stream": "UpStream"}).stream, "upstream")


class StallTests(StageCase):
    def test_latency_sends_nothing_into_a_full_writer_and_goes_on_when_it_drains(self):
        stage = self.stage("latency", latency=100)
        stage.write(b"one")
        self.hooks.full = True
        self.advance(0.2)
        self.assertEqual(self.received.events, [])
        self.assertEqual(stage.held, 3)
        self.hooks.full = False
        stage.resume()
        self.assertEqual(self.received.data(), b"one")

    def test_a_slicer_holds_a_chunk_as_one_object_and_cuts_as_it_sends(self):
        stage = self.stage("slicer", average_size=1, delay=10)
        stage.write(b"x" * (1 << 20))
        self.assertEqual((len(stage.queue), stage.held), (1, (1 << 20) - 1))
        self.hooks.full = True
        self.advance(0.01, step=0.001)
        self.assertEqual(len(self.received.events), 1)
        self.hooks.full = False
        stage.resume()
        self.assertEqual(len(self.received.events), 2)


class EchoServer(ThreadedServer):
    def handle(self, conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except ConnectionResetError:
                pass  # (a test's relay dropped its connection)


class HelperTests(SynchronousTestCase):
    def test_relay_costs_no_descriptors_per_use(self):
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("descriptors are counted through /proc/self/fd")
        server = EchoServer()
        self.addCleanup(server.close)
        with relay(f"127.0.0.1:{server.port}") as control:  # the reactor thread, once
            exchange(control.address[1], b"warm", half_close=True)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            with relay(f"127.0.0.1:{server.port}") as control:
                self.assertEqual(exchange(control.address[1], b"x", half_close=True), (b"x", "closed"))
        deadline = time.monotonic() + 10  # (the relay's last sockets close on the reactor's thread)
        while len(os.listdir("/proc/self/fd")) > before and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertLessEqual(len(os.listdir("/proc/self/fd")), before)  # a reactor per use: 3 each

    def test_a_call_the_reactor_never_answers_times_out(self):
        from poetrynow.relay import testing

        self.patch(testing, "CALL_TIMEOUT", 0.2)
        thread = testing.shared_thread()
        with self.assertRaises(TimeoutError):
            thread.call(defer.Deferred)

    def test_reset_drops_the_open_connections_and_counts_from_one(self):
        server = EchoServer()
        self.addCleanup(server.close)
        with relay(f"127.0.0.1:{server.port}") as control:
            held = socket.create_connection(control.address)
            self.addCleanup(held.close)
            held.sendall(b"x")
            self.assertEqual(held.recv(1), b"x")
            control.reset(seed=3)
            held.settimeout(10)
            try:
                self.assertEqual(held.recv(1), b"")
            except ConnectionResetError:
                pass  # (an abort: the connection is gone either way)
            self.assertEqual((control.relay.count, control.relay.seed), (0, 3))
