"""The relay against real sockets on 127.0.0.1: each toxic each way, changes on open connections,
toxicity, a disabled relay, reset, the seed, flow control, and a fault that costs one connection.

What arrives and how the stream ends (a FIN or a reset) is checked here; when it
arrives is checked in tests/test_relay_toxics.py, under task.Clock.
"""

from __future__ import annotations

import socket

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs
from zope.interface import implementer

from poetrynow.relay import ApiError, Relays, kinds
from poetrynow.relay.connection import Connection
from poetrynow.relay.pipe import HELD_LIMIT
from poetrynow.relay.testing import RelayFixture
from tests.time_limit import TestCase
from tests.twisted_support import listen


@implementer(IHalfCloseableProtocol)
class Echo(Protocol):
    """Sends back what it hears; answers the client's FIN with its own."""

    def dataReceived(self, data):
        self.factory.heard += data
        self.transport.write(data)

    def readConnectionLost(self):
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass


class EchoFactory(Factory):
    protocol = Echo

    def __init__(self):
        self.heard = bytearray()


class Talker(Protocol):
    """Says ``factory.say`` and closes."""

    def connectionMade(self):
        self.transport.write(self.factory.say)
        self.transport.loseConnection()


class Flood(Protocol):
    """Writes as fast as its transport lets it, for ever: a streaming producer."""

    paused = False

    def connectionMade(self):
        self.factory.flooding.append(self)
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        while not self.paused and self.transport.connected:
            self.transport.write(b"x" * 65536)

    def stopProducing(self):
        self.paused = True


@implementer(IHalfCloseableProtocol)
class Client(Protocol):
    """Sends ``send`` (then a FIN, with ``half_close``); ``ended`` fires with what came and how it ended."""

    def __init__(self, send: bytes = b"", half_close: bool = True):
        self.send, self.half_close = send, half_close
        self.received = bytearray()
        self.ended: defer.Deferred = defer.Deferred()
        self.fin = False

    def connectionMade(self):
        if self.send:
            self.transport.write(self.send)
        if self.half_close:
            self.transport.loseWriteConnection()

    def dataReceived(self, data):
        self.received += data

    def readConnectionLost(self):
        self.fin = True
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        how = "closed" if self.fin or reason.check(ConnectionDone) else "reset"
        self.ended.callback((bytes(self.received), how))


def connect(port: int, client: Client) -> defer.Deferred:
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)


class RelayCase(TestCase):
    def echo(self) -> int:
        self.upstream = EchoFactory()
        return listen(self, self.upstream)

    def talker(self, say: bytes) -> int:
        factory = Factory.forProtocol(Talker)
        factory.say = say  # type: ignore[attr-defined]
        return listen(self, factory)

    @defer.inlineCallbacks
    def relay(self, upstream_port: int, seed=None):
        fixture = yield RelayFixture(self, ("127.0.0.1", upstream_port), seed=seed).start()
        return fixture

    @defer.inlineCallbacks
    def exchange(self, port: int, send: bytes = b"", half_close: bool = True):
        client = Client(send, half_close)
        yield connect(port, client)
        result = yield client.ended
        return result


POEM = b"".join(b"line %d of a poem that goes on\n" % n for n in range(3000))  # about 100 KB


class PlainRelayTests(RelayCase):
    @defer.inlineCallbacks
    def test_bytes_both_ways_and_a_half_close_passed_on(self):
        relay = yield self.relay(self.echo())
        result = yield self.exchange(relay.address[1], POEM)
        self.assertEqual(result, (POEM, "closed"))
        self.assertEqual(bytes(self.upstream.heard), POEM)

    @defer.inlineCallbacks
    def test_an_unreachable_upstream_closes_the_client_with_one_line(self):
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
            relay = yield self.relay(held.getsockname()[1])
            with capturedLogs() as logs:
                result = yield self.exchange(relay.address[1], b"hello")
        self.assertEqual(result, (b"", "closed"))
        lines = [event["log_format"] for event in logs if "could not reach" in event["log_format"]]
        self.assertEqual(len(lines), 1)


class EachToxicTests(RelayCase):
    """Each toxic, downstream (on the echo's answer) and upstream (on the request)."""

    @defer.inlineCallbacks
    def through(self, kind: str, stream: str, send: bytes = POEM, **attributes):
        relay = yield self.relay(self.echo())
        relay.add(kind, stream=stream, **attributes)
        result = yield self.exchange(relay.address[1], send)
        return result

    @defer.inlineCallbacks
    def test_latency_bandwidth_slow_close_and_slicer_keep_every_byte_in_order(self):
        kinds = {
            "latency": {"latency": 20, "jitter": 10},
            "bandwidth": {"rate": 10_000},
            "slow_close": {"delay": 20},
            "slicer": {"average_size": 500, "size_variation": 100, "delay": 10},
        }
        for kind, attributes in kinds.items():
            for stream in ("downstream", "upstream"):
                result = yield self.through(kind, stream, **attributes)
                self.assertEqual(result, (POEM, "closed"), f"{kind} {stream}")
                self.assertEqual(bytes(self.upstream.heard), POEM)

    @defer.inlineCallbacks
    def test_limit_data_downstream_truncates_the_answer(self):
        relay = yield self.relay(self.talker(POEM))
        relay.add("limit_data", bytes=1000)
        result = yield self.exchange(relay.address[1])
        self.assertEqual(result, (POEM[:1000], "closed"))

    @defer.inlineCallbacks
    def test_limit_data_upstream_truncates_the_request(self):
        result = yield self.through("limit_data", "upstream", bytes=10)
        self.assertEqual(bytes(self.upstream.heard), POEM[:10])
        self.assertEqual(result[1], "closed")
        self.assertTrue(POEM[:10].startswith(result[0]))

    @defer.inlineCallbacks
    def test_timeout_passes_nothing_then_closes(self):
        for stream in ("downstream", "upstream"):
            result = yield self.through("timeout", stream, send=b"hello", timeout=50)
            self.assertEqual(result, (b"", "closed"), stream)
            self.assertEqual(bytes(self.upstream.heard), b"" if stream == "upstream" else b"hello")

    @defer.inlineCallbacks
    def test_reset_peer_resets(self):
        for stream in ("downstream", "upstream"):
            result = yield self.through("reset_peer", stream, send=b"hello", timeout=10)
            self.assertEqual(result, (b"", "reset"), stream)

    @defer.inlineCallbacks
    def test_timeout_zero_holds_until_removed(self):
        relay = yield self.relay(self.echo())
        relay.add("timeout", timeout=0)
        client = Client(b"dropped", half_close=False)
        yield connect(relay.address[1], client)
        yield self.until(lambda: bytes(self.upstream.heard) == b"dropped")
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(bytes(client.received), b"")  # held, and the connection still open
        self.assertFalse(client.ended.called)
        relay.remove("timeout_downstream")
        client.transport.write(b"kept")
        client.transport.loseWriteConnection()
        result = yield client.ended
        self.assertEqual(result, (b"kept", "closed"))

    @defer.inlineCallbacks
    def until(self, condition, limit: float = 10.0):
        """Wait (turning the reactor) until ``condition()``: a deadline for a hang, not a timing."""
        waited = 0.0
        while not condition():
            self.assertLess(waited, limit, "the condition never came")
            yield deferLater(reactor, 0.005, lambda: None)
            waited += 0.005


class OpenConnectionTests(RelayCase):
    """Toxics added, changed and removed while a connection is open reach it."""

    @defer.inlineCallbacks
    def test_added_then_updated_then_removed(self):
        relay = yield self.relay(self.echo())
        client = Client(half_close=False)
        yield connect(relay.address[1], client)
        wait = EachToxicTests.until

        client.transport.write(b"one.")
        yield wait(self, lambda: bytes(client.received) == b"one.")
        relay.add("limit_data", bytes=100)  # the connection has had none of it yet
        relay.update("limit_data_downstream", bytes=10)
        client.transport.write(b"two.")
        yield wait(self, lambda: bytes(client.received) == b"one.two.")
        relay.remove("limit_data_downstream")
        client.transport.write(b"three, longer than ten bytes.")
        yield wait(self, lambda: bytes(client.received).endswith(b"ten bytes."))
        relay.add("limit_data", bytes=3)
        client.transport.write(b"four.")
        result = yield client.ended
        self.assertEqual(result, (b"one.two.three, longer than ten bytes.fou", "closed"))

    @defer.inlineCallbacks
    def test_removing_latency_lets_what_it_held_through_in_order(self):
        relay = yield self.relay(self.echo())
        relay.add("latency", latency=60_000)  # a minute: only the removal lets it out
        client = Client(b"held", half_close=True)
        yield connect(relay.address[1], client)
        yield EachToxicTests.until(self, lambda: bytes(self.upstream.heard) == b"held")
        yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(bytes(client.received), b"")
        relay.remove("latency_downstream")
        result = yield client.ended
        self.assertEqual(result, (b"held", "closed"))


def relay_timers() -> list:
    """The reactor's timers that belong to relayed connections (a toxic's)."""
    return [
        call
        for call in reactor.getDelayedCalls()
        if isinstance(getattr(call.func, "__self__", None), Connection)
    ]


class IdleTests(RelayCase):
    @defer.inlineCallbacks
    def test_idle_connections_through_toxics_cost_no_timers(self):
        relay = yield self.relay(self.echo())
        relay.add("latency", latency=100, jitter=10)
        relay.add("bandwidth", rate=1, stream="upstream")
        relay.add("slicer", average_size=1, delay=1000)
        clients = [Client(half_close=False) for _ in range(20)]
        yield defer.gatherResults([connect(relay.address[1], client) for client in clients])
        yield EachToxicTests.until(self, lambda: sum(c.open for c in relay.relay.connections) == 20)
        self.assertEqual(relay_timers(), [])
        clients[0].transport.write(b"x")  # the one that speaks has timers, while its bytes are held
        yield EachToxicTests.until(self, lambda: bool(relay_timers()))
        for client in clients:
            client.transport.loseConnection()
        yield EachToxicTests.until(self, lambda: not relay.relay.connections)  # (the x held, then its FIN)
        self.assertEqual(relay_timers(), [])


class ToxicityTests(RelayCase):
    @defer.inlineCallbacks
    def test_toxicity_zero_spares_every_connection_one_spares_none(self):
        relay = yield self.relay(self.talker(b"0123456789"))
        relay.add("limit_data", bytes=2, toxicity=0)
        spared = yield defer.gatherResults([self.exchange(relay.address[1]) for _ in range(5)])
        self.assertEqual(spared, [(b"0123456789", "closed")] * 5)
        relay.update("limit_data_downstream", toxicity=1)
        hit = yield defer.gatherResults([self.exchange(relay.address[1]) for _ in range(5)])
        self.assertEqual(hit, [(b"01", "closed")] * 5)

    @defer.inlineCallbacks
    def fates(self, upstream: int, seed: int) -> defer.Deferred:
        relays = Relays(seed=seed)
        relay = relays.create(
            {"name": "seeded", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream}"}
        )
        try:
            relay.add_toxic({"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 2}})
            port = int(relay.listen.rpartition(":")[2])
            fates = []
            for _ in range(16):  # one after the other: connection n is the nth
                data, _how = yield self.exchange(port)
                fates.append(len(data))
        finally:
            yield relays.stop()
        return fates

    @defer.inlineCallbacks
    def test_the_seed_gives_connection_n_the_same_fate_on_every_run(self):
        upstream = self.talker(b"0123456789")
        first = yield self.fates(upstream, seed=42)
        second = yield self.fates(upstream, seed=42)
        self.assertEqual(first, second)
        self.assertEqual(set(first), {2, 10})


class EnableResetTests(RelayCase):
    @defer.inlineCallbacks
    def test_a_disabled_relay_refuses_and_drops_then_comes_back_on_its_port(self):
        relay = yield self.relay(self.echo())
        port = relay.address[1]
        open_client = Client(half_close=False)
        yield connect(port, open_client)
        yield EachToxicTests.until(self, lambda: len(relay.relay.connections) == 1)
        yield relay.disable()  # done once the port is closed
        dropped = yield open_client.ended
        self.assertEqual(dropped[0], b"")
        yield self.assertFailure(connect(port, Client()), ConnectionRefusedError)
        self.assertFalse(relay.relay.as_json()["enabled"])
        yield relay.enable()
        self.assertEqual(relay.address[1], port)
        result = yield self.exchange(port, b"back")
        self.assertEqual(result, (b"back", "closed"))

    @defer.inlineCallbacks
    def test_reset_enables_every_relay_and_removes_every_toxic(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        upstream = f"127.0.0.1:{self.echo()}"
        one = relays.create({"name": "one", "listen": "127.0.0.1:0", "upstream": upstream})
        two = relays.create({"name": "two", "listen": "127.0.0.1:0", "upstream": upstream, "enabled": False})
        one.add_toxic({"type": "timeout", "attributes": {"timeout": 0}})
        yield relays.update("one", {"enabled": False})
        yield relays.reset()
        self.assertEqual([(r.enabled, r.toxics) for r in (one, two)], [(True, []), (True, [])])
        for relay in (one, two):
            result = yield self.exchange(int(relay.listen.rpartition(":")[2]), b"hi")
            self.assertEqual(result, (b"hi", "closed"))


class RelaysRulesTests(RelayCase):
    """toxiproxy's statuses for the collection: 400, 404, 409."""

    def status(self, call, *args) -> int:
        with self.assertRaises(ApiError) as caught:
            call(*args)
        return caught.exception.status

    def test_statuses(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        up = f"127.0.0.1:{self.echo()}"
        relay = relays.create({"name": "a", "listen": "127.0.0.1:0", "upstream": up})
        self.assertNotEqual(relay.listen, "127.0.0.1:0")  # the answer names the port
        self.assertEqual(relay.as_json()["enabled"], True)
        self.assertEqual(
            self.status(relays.create, {"name": "a", "listen": "127.0.0.1:0", "upstream": up}), 409
        )
        self.assertEqual(
            self.status(relays.create, {"name": "b", "listen": relay.listen, "upstream": up}), 500
        )  # toxiproxy's answer to a failed listen
        self.assertEqual(self.status(relays.create, {"listen": "127.0.0.1:0", "upstream": up}), 400)
        self.assertEqual(self.status(relays.create, {"name": "c", "listen": "127.0.0.1:0"}), 400)
        self.assertEqual(self.status(relays.create, {"name": "c", "listen": "nowhere", "upstream": up}), 400)
        self.assertNotIn("b", relays.all())
        self.assertEqual(self.status(relays.get, "missing"), 404)
        self.assertEqual(self.status(relays.delete, "missing"), 404)
        relay.add_toxic({"type": "latency"})
        self.assertEqual(self.status(relay.add_toxic, {"type": "latency"}), 409)
        self.assertEqual(self.status(relay.add_toxic, {"type": "poison"}), 400)
        self.assertEqual(self.status(relay.toxic, "nope"), 404)
        self.assertEqual(self.status(relay.update_toxic, "nope", {}), 404)
        self.assertEqual(self.status(relay.remove_toxic, "nope"), 404)
        self.assertEqual([t["name"] for t in relay.as_json()["toxics"]], ["latency_downstream"])

    @defer.inlineCallbacks
    def test_populate_keeps_what_matches_and_replaces_the_rest(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        up, other = f"127.0.0.1:{self.echo()}", f"127.0.0.1:{self.talker(b'x')}"
        kept = relays.create({"name": "kept", "listen": "127.0.0.1:0", "upstream": up})
        kept.add_toxic({"type": "latency"})
        moved = relays.create({"name": "moved", "listen": "127.0.0.1:0", "upstream": up})
        bodies = [
            {"name": "kept", "listen": kept.listen, "upstream": up},
            {"name": "moved", "listen": moved.listen, "upstream": other},
            {"name": "new", "listen": "127.0.0.1:0", "upstream": up, "enabled": False},
        ]
        result = yield relays.populate(bodies)
        self.assertEqual([r.name for r in result], ["kept", "moved", "new"])
        self.assertIs(result[0], kept)
        self.assertEqual(len(kept.toxics), 1)
        self.assertEqual((result[1].upstream, result[1].listen), (other, moved.listen))
        self.assertFalse(result[2].enabled)
        answer = yield self.exchange(int(moved.listen.rpartition(":")[2]))
        self.assertEqual(answer, (b"x", "closed"))
        for bad in ([{"name": "x"}], {"name": "x"}):
            refused = yield self.assertFailure(relays.populate(bad), ApiError)
            self.assertEqual((refused.status, refused.created), (400, []))

    @defer.inlineCallbacks
    def test_an_update_moves_the_relay(self):
        relays = Relays()
        self.addCleanup(relays.stop)
        relay = relays.create({"name": "a", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{self.echo()}"})
        yield relays.update("a", {"upstream": f"127.0.0.1:{self.talker(b'moved')}"})
        answer = yield self.exchange(int(relay.listen.rpartition(":")[2]))
        self.assertEqual(answer, (b"moved", "closed"))
        yield relays.delete("a")
        self.assertEqual(relays.all(), {})


class FlowControlTests(RelayCase):
    def flood(self) -> tuple[int, list]:
        factory = Factory.forProtocol(Flood)
        factory.flooding = []  # type: ignore[attr-defined]
        return listen(self, factory), factory.flooding  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def check_bounded(self, toxic: dict | None):
        port, flooding = self.flood()
        relay = yield self.relay(port)
        if toxic:
            relay.add(**toxic)
        client = Client(half_close=False)
        yield connect(relay.address[1], client)
        client.transport.pauseProducing()  # a reader that does not read
        yield EachToxicTests.until(self, lambda: bool(flooding) and flooding[0].paused)
        [connection] = relay.relay.connections
        # Paused for good once the kernel's buffers are full too (loopback's grow for a while,
        # and the relay's reader may go on meanwhile): a deadline, not a pause of fixed length.
        yield EachToxicTests.until(self, lambda: connection.down.reader_paused and flooding[0].paused)
        held = (
            connection.down.held()
            + len(connection.client.transport.dataBuffer)
            + sum(len(part) for part in connection.client.transport._tempDataBuffer)
        )
        self.assertLess(held, HELD_LIMIT + (1 << 20))
        client.transport.resumeProducing()
        yield EachToxicTests.until(self, lambda: len(client.received) > 4 * HELD_LIMIT)
        client.transport.abortConnection()
        yield client.ended

    def test_a_slow_reader_pauses_the_upstream(self):
        return self.check_bounded(None)

    def test_a_toxics_queue_is_bounded_too(self):
        return self.check_bounded({"type": "latency", "latency": 50})


class OneFaultTests(RelayCase):
    @defer.inlineCallbacks
    def test_a_bug_costs_its_connection_not_the_relay(self):
        relay = yield self.relay(self.echo())
        relay.add("slicer", average_size=2)
        real = kinds.Slicer.write

        def buggy(stage, data):
            if data == b"boom":
                raise RuntimeError("a bug in a toxic")
            return real(stage, data)

        self.patch(kinds.Slicer, "write", buggy)
        with capturedLogs() as logs:
            victim = yield self.exchange(relay.address[1], b"boom")
        self.assertEqual(victim, (b"", "reset"))
        failures = [event for event in logs if event.get("log_failure") is not None]
        self.assertEqual(len(failures), 1)
        self.flushLoggedErrors(RuntimeError)
        survivor = yield self.exchange(relay.address[1], b"fine")
        self.assertEqual(survivor, (b"fine", "closed"))
