"""A bug in one connection must not stop the server (issue 22, item 3).

Each test plants an exception in one client's path through a real server on
127.0.0.1 (the second client's, of four), in the test's own reactor, and checks
what was promised: the error is logged once, with its traceback; it costs that
client its connection (cut short or reset, never a hang); every other client
gets its whole poem; and a client that comes afterwards does too, because the
server still listens. The clients are blocking sockets in threads, each with a
timeout.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
from dataclasses import replace

from twisted.internet import defer, reactor, threads
from twisted.logger import capturedLogs

from poetrynow.address import Address
from poetrynow.netstring import encode
from poetrynow.poems import load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.servers import deploy, proxy
from poetrynow.servers.common.listen import Where
from poetrynow.servers.fast import plain as fast
from poetrynow.servers.slow import blocking
from poetrynow.servers.slow.fast import BareClient
from poetrynow.transforms import cummingsify
from tests.support import Editions, connect, exchange, plain_twin, read_to_end
from tests.time_limit import TestCase
from tests.twisted_support import TEST_POEM, WatchedSlowFactory, listen

HERE = Where(0, "127.0.0.1")
CLIENTS = 4
FAULTY = 1  # the second client to connect is the one whose handling fails
WHOLE, CUT, RESET = "whole poem", "cut short", "reset"
#: Each client's socket timeout: every poem here takes well under a second.
WAIT = 20.0


class InjectedFault(Exception):
    """The bug a test plants in one connection's path."""


class FaultOnce:
    """Calls ``real``, except that its ``on``-th call raises :class:`InjectedFault` instead."""

    def __init__(self, real, on: int = FAULTY + 1):
        self.real, self.on, self.calls = real, on, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.on:
            raise InjectedFault(f"planted in call {self.calls}")
        return self.real(*args, **kwargs)


def outcome(got: tuple[bytes, str], expected: bytes) -> str:
    """How one client's conversation ended, in a word (or in full, when it is none of them)."""
    data, end = got
    if (data, end) == (expected, "closed"):
        return WHOLE
    if end == "Connection reset by peer":
        return RESET
    if end == "closed":
        return CUT
    return f"{len(data)} of {len(expected)} bytes, then {end}"


def read_and_close(sock: socket.socket) -> tuple[bytes, str]:
    with sock:
        return read_to_end(sock)


def exchange_unless_refused(port: int, request: bytes) -> tuple[bytes, str]:
    """A whole conversation, or how it failed to start: a server that stopped listening refuses."""
    try:
        return exchange(port, request, timeout=WAIT)
    except ConnectionRefusedError:
        return b"", "refused"


class OneFaultCase(Editions, TestCase):
    """What every test here checks, once its server listens and its fault is planted."""

    def start(self, build, *args, **kwargs):
        """Build a server tree in this class's edition on 127.0.0.1, port 0, and start it."""
        kwargs.setdefault("plain", self.plain)
        tree = build(*args, where=HERE, reactor=reactor, **kwargs)
        tree.startService()
        self.addCleanup(tree.stopService)
        return tree

    @defer.inlineCallbacks
    def clients(self, port: int, expected: bytes, request: bytes = b""):
        """Four clients at once, then one more once they are done: how each ended, in a word."""
        # Connected in turn, before the reactor runs again: the server accepts them in this order.
        sockets = [connect(port, request, timeout=WAIT) for _ in range(CLIENTS)]
        ends = yield defer.gatherResults([threads.deferToThread(read_and_close, sock) for sock in sockets])
        later = yield threads.deferToThread(exchange_unless_refused, port, request)
        return [outcome(end, expected) for end in ends], outcome(later, expected)

    def assert_one_connection_lost(self, outcomes: list[str], later: str) -> None:
        seen = f"the four clients: {outcomes}; the one after: {later!r}"
        self.assertIn(
            outcomes[FAULTY], (CUT, RESET), f"the faulty client's connection must end, not hang ({seen})"
        )
        others = outcomes[:FAULTY] + outcomes[FAULTY + 1 :]
        self.assertEqual(others, [WHOLE] * (CLIENTS - 1), f"every other client ({seen})")
        self.assertEqual(later, WHOLE, f"a client after the fault: the server still listens ({seen})")

    def assert_logged_once(self, events: list) -> None:
        # A new-style event carries its failure as log_failure; one from twisted.python.log.err
        # (as tcp.Port logs), as failure.
        failures = [
            failure for event in events if (failure := event.get("log_failure") or event.get("failure"))
        ]
        self.assertEqual([failure.type for failure in failures], [InjectedFault], "one error, logged once")
        self.assertTrue(failures[0].frames, "logged with its traceback")

    @defer.inlineCallbacks
    def check(self, port: int, expected: bytes, request: bytes = b""):
        """The whole promise: one connection lost, everyone else served, one error logged."""
        with capturedLogs() as events:
            outcomes, later = yield self.clients(port, expected, request)
            gc.collect()  # an error a dropped Deferred held is logged when it is collected
        self.flushLoggedErrors(InjectedFault)  # logged on purpose: the assertions below count them
        self.assert_one_connection_lost(outcomes, later)
        self.assert_logged_once(events)


class SlowServerFaultTests(OneFaultCase):
    @defer.inlineCallbacks
    def test_a_fault_in_one_connections_plan(self):
        tree = self.start(deploy.slow_poetry, "lighthouse", 300, 0.01, log_clients=False)
        factory = tree.listener.factory
        factory.plan_for = FaultOnce(factory.plan_for)
        yield self.check(tree.listener.port, load_poem("lighthouse").data)
        self.assertEqual(factory.plan_for.calls, CLIENTS + 1)

    @defer.inlineCallbacks
    def test_a_fault_in_one_connections_third_chunk(self):
        # Met mid-poem, on a timer: the plain edition's own, the fast one's Pacer.
        tree = self.start(deploy.slow_poetry, "lighthouse", 300, 0.01, log_clients=False)
        factory = tree.listener.factory
        real = factory.plan_for

        def plan_for(connection: int):
            plan = real(connection)
            return replace(plan, chunks=BrokenChunks(plan.chunks)) if connection == FAULTY + 1 else plan

        factory.plan_for = plan_for
        yield self.check(tree.listener.port, load_poem("lighthouse").data)
        if not self.plain:  # a bare client leaves at once; a transport's, when its close is done
            self.assertEqual(factory.live, set(), "the faulty client is not held either")


class BrokenChunks(tuple):
    """A plan's chunks, of which the third cannot be had."""

    def __getitem__(self, index):
        if index == 2:
            raise InjectedFault("planted in one client's third chunk")
        return super().__getitem__(index)


class FastServerFaultTests(OneFaultCase):
    @defer.inlineCallbacks
    def test_a_fault_in_one_connections_answer(self):
        tree = self.start(deploy.fast_poetry, "kettle", log_clients=False)
        if self.plain:
            self.patch(fast, "send_rest", FaultOnce(fast.send_rest))
        else:
            tree.listener.listening.write_answer = FaultOnce(os.write)
        yield self.check(tree.listener.port, load_poem("kettle").data)


class ProxyFaultTests(OneFaultCase):
    def proxy(self):
        upstream = listen(self, WatchedSlowFactory(num_bytes=10, delay=0.01))
        return self.start(deploy.poetry_proxy, Address("127.0.0.1", upstream), log_clients=False)

    @defer.inlineCallbacks
    def test_a_fault_sending_one_waiting_client_the_fetched_poem(self):
        tree = self.proxy()
        self.patch(proxy, "send_rest", FaultOnce(proxy.send_rest))
        yield self.check(tree.listener.port, TEST_POEM)
        self.assertEqual(tree.held.cache_hits, 1)  # the four waited on one fetch; the fifth hit the cache

    @defer.inlineCallbacks
    def test_a_fault_answering_one_cache_hit(self):
        tree = self.proxy()
        got = yield threads.deferToThread(exchange, tree.listener.port)
        self.assertEqual(got, (TEST_POEM, "closed"))  # now the poem is cached
        if self.plain:
            self.patch(proxy, "send_rest", FaultOnce(proxy.send_rest))
        else:
            tree.listener.listening.write_answer = FaultOnce(os.write)
        yield self.check(tree.listener.port, TEST_POEM)


PlainSlowServerFaultTests = plain_twin(SlowServerFaultTests)
PlainFastServerFaultTests = plain_twin(FastServerFaultTests)
PlainProxyFaultTests = plain_twin(ProxyFaultTests)


class FastEditionFaultTests(OneFaultCase):
    """Faults in the fast edition's own machinery: the accept loop's bookkeeping, the Pacer."""

    @defer.inlineCallbacks
    def test_a_fault_in_the_accept_loops_log_of_one_client(self):
        tree = self.start(deploy.fast_poetry, "kettle", log_clients=False)
        tree.listener.factory.answered = FaultOnce(lambda address, nbytes: None)
        yield self.check(tree.listener.port, load_poem("kettle").data)

    @defer.inlineCallbacks
    def test_a_fault_in_one_bare_clients_tick_stops_no_other_poem(self):
        # The second client's first tick on the Pacer's timer (its first chunk went out on
        # accept) raises; the others' chunks must keep coming, with no new connection to
        # re-arm the timer: the client after the fault connects only once they are done.
        order: list[BareClient] = []
        ticks: dict[int, int] = {}
        real = BareClient.tick

        def tick(client: BareClient):
            if client not in order:
                order.append(client)
            ticks[id(client)] = ticks.get(id(client), 0) + 1
            if order.index(client) == FAULTY and ticks[id(client)] == 2:
                raise InjectedFault("planted in one bare client's tick")
            return real(client)

        self.patch(BareClient, "tick", tick)
        tree = self.start(deploy.slow_poetry, "lighthouse", 300, 0.01, log_clients=False)
        yield self.check(tree.listener.port, load_poem("lighthouse").data)
        self.assertEqual(tree.listener.factory.live, set())  # the faulty client is not held either


class TransformServerFaultTests(OneFaultCase):
    @defer.inlineCallbacks
    def test_a_transform_that_raises_for_one_request(self):
        tree = self.start(deploy.transformed_poetry, log_clients=False)
        tree.held.transform = FaultOnce(tree.held.transform)
        poem = load_poem("caffe").data
        answer = encode(cummingsify(poem.decode("utf-8")).encode("utf-8"))
        yield self.check(tree.listener.port, answer, request=encode(b"cummingsify." + poem))


class FaultySchedule(PoemSchedule):
    """A schedule whose second client's chunks cannot be worked out."""

    fault = "planted in one client's schedule"

    def slices(self):
        calls = self.__dict__.setdefault("calls", [])  # the dataclass is frozen
        calls.append(1)
        if len(calls) == FAULTY + 1:
            raise InjectedFault(self.fault)
        return super().slices()


class BlockingServerFaultTests(OneFaultCase):
    """``serve_forever``, the blocking server's loop, in a thread of its own."""

    @defer.inlineCallbacks
    def test_a_fault_in_one_clients_schedule(self):
        poem = load_poem("lighthouse").data
        listener = socket.create_server(("127.0.0.1", 0))
        lines: list[str] = []
        schedule = FaultySchedule(len(poem), 300, 0.001)

        def serve():
            try:
                blocking.serve_forever([listener], poem, schedule, lines.append, WAIT)
            except OSError:  # the listener was shut down: the test is over
                pass

        server = threading.Thread(target=serve, daemon=True)
        server.start()

        def stop():
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept()
            except OSError:
                pass
            listener.close()
            server.join(30)

        self.addCleanup(stop)
        outcomes, later = yield self.clients(listener.getsockname()[1], poem)
        self.assert_one_connection_lost(outcomes, later)
        # Its log takes lines: the traceback may come whole or a line at a time.
        log = "\n".join(lines)
        error = f"InjectedFault: {FaultySchedule.fault}"
        self.assertEqual(log.count(error), 1, f"one error, logged once:\n{log}")
        self.assertEqual(log.count("Traceback (most recent call last):"), 1, f"with its traceback:\n{log}")
        self.assertLess(log.index("Traceback (most recent call last):"), log.index(error))
