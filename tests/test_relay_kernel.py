"""The kernel path of the relay (splice), and its switches to and from the user-space path.

A direction with no toxic moves its bytes with splice(2); a toxic added moves it to
the stages before its next byte, the last one removed moves it back. These tests
stream known bytes both ways through a relay to an echo while a pass-through toxic
(latency 0) is added and removed again and again on either stream, with a reader
that takes everything at once and one that stops reading now and then: every byte
must come back once, in order (a hash of the whole stream), and both paths must
have served. Real sockets on 127.0.0.1; no sleeps, deadlines only.
"""

from __future__ import annotations

import hashlib
import random
import sys
from unittest import mock

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from poetrynow.relay import kernel, pipes, transport
from poetrynow.relay.pipe import Direction
from tests.test_relay import Client, RelayCase, connect
from tests.time_limit import SynchronousTestCase

#: Bytes each stream carries: enough for many switches while they flow.
SIZE = 8 << 20
CHUNK = 1 << 16


@implementer(IHalfCloseableProtocol, IPushProducer)
class Streamer(Client):
    """Sends ``data`` as fast as the transport takes it, then a FIN; keeps what comes back.

    ``stall``: a reader that stops reading for a moment, every so often (real time:
    the reactor's clock, for the flow control to meet a full pipe and a full buffer)."""

    def __init__(self, data: bytes, stall: bool, on_read=None):
        super().__init__(half_close=False)
        self.data, self.stall, self.on_read = data, stall, on_read
        self.sent = 0
        self.paused = False
        self.received = hashlib.sha256()
        self.count = 0
        self.ended: defer.Deferred = defer.Deferred()
        self.fin = False
        self.stalls: task.LoopingCall | None = None
        self.resume = None  # the pending end of a stall

    def connectionMade(self):
        self.transport.registerProducer(self, True)
        self.resumeProducing()
        if self.stall:
            self.stalls = task.LoopingCall(self.pause_reading)
            self.stalls.start(0.02, now=False)

    def pause_reading(self):
        self.transport.pauseProducing()
        self.resume = reactor.callLater(0.005, self.transport.resumeProducing)

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        while not self.paused and self.sent < len(self.data):
            self.transport.write(self.data[self.sent : self.sent + CHUNK])
            self.sent += CHUNK
        if self.sent >= len(self.data) and not self.paused:
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def stopProducing(self):
        self.paused = True

    def dataReceived(self, data):
        self.received.update(data)
        self.count += len(data)
        if self.on_read is not None:
            self.on_read()

    def connectionLost(self, reason):
        if self.stalls is not None and self.stalls.running:
            self.stalls.stop()
        if self.resume is not None and self.resume.active():
            self.resume.cancel()
        how = "closed" if self.fin or reason.check(ConnectionDone) else "reset"
        self.ended.callback((self.count, self.received.hexdigest(), how))


class Counted(kernel.Splice):
    """A Splice that counts how many were started: proof that the kernel path served."""

    started = 0
    fell_back = 0  # splices refused at their first byte, the direction left to user space

    def __init__(self, *args, **kwargs):
        type(self).started += 1
        super().__init__(*args, **kwargs)


def count_fallback(error: OSError) -> None:
    Counted.fell_back += 1


class SwitchTests(RelayCase):
    def setUp(self):
        if (why := kernel.unavailable()) is not None:
            self.skipTest(f"no kernel path here: {why}")
        Counted.started = Counted.fell_back = 0
        self.patch(kernel, "Splice", Counted)
        self.patch(kernel, "refused_once", count_fallback)

    @defer.inlineCallbacks
    def stream_while_switching(self, stall: bool):
        relay = yield self.relay(self.echo())
        data = random.Random(29).randbytes(SIZE)
        client = Streamer(data, stall)
        client.on_read = None
        switches = {"added": 0, "removed": 0}
        present: dict[str, bool] = {"upstream": False, "downstream": False}
        turn = iter(range(10**9))

        def switch():
            stream = "upstream" if next(turn) % 3 else "downstream"  # both, unevenly: every mix
            if present[stream]:
                relay.remove(f"pass {stream}")
                switches["removed"] += 1
            else:
                relay.add("latency", name=f"pass {stream}", stream=stream, latency=0)
                switches["added"] += 1
            present[stream] = not present[stream]

        client.on_read = switch  # a switch at every read: many, wherever the bytes are
        yield connect(relay.address[1], client)
        count, digest, how = yield client.ended
        self.assertEqual((count, how), (SIZE, "closed"))
        self.assertEqual(digest, hashlib.sha256(data).hexdigest(), "a byte lost, doubled or moved")
        self.assertEqual(hashlib.sha256(bytes(self.upstream.heard)).hexdigest(), digest)
        self.assertGreater(switches["added"] + switches["removed"], 50)
        self.assertGreater(Counted.started, 2, "the kernel path served between the toxics")

    def test_a_fast_reader_keeps_every_byte_across_the_switches(self):
        return self.stream_while_switching(stall=False)

    def test_a_slow_reader_keeps_every_byte_across_the_switches(self):
        return self.stream_while_switching(stall=True)

    @defer.inlineCallbacks
    def test_no_toxic_no_copy(self):
        """A relay with no toxic splices each direction once it carries a stream, and ends cleanly."""
        relay = yield self.relay(self.echo())
        data = random.Random(1).randbytes(1 << 20)
        count, digest, how = yield self.streamed(relay, data)
        self.assertEqual((count, digest, how), (len(data), hashlib.sha256(data).hexdigest(), "closed"))
        self.assertGreaterEqual(Counted.started, 2)  # one each way (more only if one could not start)
        self.assertEqual(Counted.fell_back, 0, "a direction went back to a copy")

    @defer.inlineCallbacks
    def streamed(self, relay, data: bytes):
        client = Streamer(data, stall=False)
        yield connect(relay.address[1], client)
        result = yield client.ended
        return result


class UserSpaceOnlyTests(SwitchTests):
    """Where the start-up check says no, the user-space path serves everything, toxics or none."""

    def setUp(self):
        Counted.started = 0
        self.patch(kernel, "Splice", Counted)
        self.patch(kernel, "disabled", True)

    @defer.inlineCallbacks
    def test_the_stream_goes_through_user_space(self):
        relay = yield self.relay(self.echo())
        data = random.Random(2).randbytes(1 << 20)
        count, digest, how = yield self.streamed(relay, data)
        self.assertEqual((count, digest, how), (len(data), hashlib.sha256(data).hexdigest(), "closed"))
        self.assertEqual(Counted.started, 0)

    test_a_fast_reader_keeps_every_byte_across_the_switches = None  # type: ignore[assignment]
    test_a_slow_reader_keeps_every_byte_across_the_switches = None  # type: ignore[assignment]
    test_no_toxic_no_copy = None  # type: ignore[assignment]


class StartUpCheckTests(SynchronousTestCase):
    """The check varies with the system: Linux with os.splice, another system, an older Python."""

    def test_elsewhere_the_reason_is_the_system(self):
        with mock.patch.object(sys, "platform", "darwin"):
            self.assertIn("Linux", kernel.check())

    def test_without_os_splice_the_reason_is_python(self):
        with mock.patch.object(sys, "platform", "linux"), mock.patch.object(pipes, "os") as os:
            del os.splice
            self.assertIn("os.splice", kernel.check())

    def test_a_splice_that_fails_is_refused(self):
        if not sys.platform.startswith("linux") or not hasattr(kernel.os, "splice"):
            self.skipTest("splice(2) is Linux's, Python 3.10+")
        with mock.patch.object(kernel.os, "splice", side_effect=OSError(22, "Invalid argument")):
            self.assertIn("Invalid argument", kernel.check())

    def test_a_transport_that_does_not_show_its_buffer_keeps_user_space(self):
        self.assertIsNone(transport.buffered(StringTransport()))

    def test_a_direction_on_such_transports_never_splices(self):
        connection = mock.Mock(open=True, ended=False)
        direction = Direction(connection, StringTransport(), StringTransport(), paused=False)
        direction.to_kernel()
        self.assertIsNone(direction.splice)


class Watcher:
    """A reactor as a splice sees it: what it watches, and a poller that may refuse (ENOSPC)."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.readers: set = set()
        self.writers: set = set()

    def addReader(self, watch):
        if self.refuse:
            raise OSError(28, "No space left on device")
        self.readers.add(watch)

    def removeReader(self, watch):
        self.readers.discard(watch)

    def addWriter(self, watch):
        self.writers.add(watch)

    def removeWriter(self, watch):
        self.writers.discard(watch)


class Owner:
    """A direction as a splice sees it: two real TCP sockets, and what it was told."""

    def __init__(self, test):
        self.reader, self.writer = pipes.tcp_pair()
        test.addCleanup(self.reader.close)
        test.addCleanup(self.writer.close)
        self.told: list[str] = []

    def spliced_eof(self):
        self.told.append("eof")

    def spliced_error(self, error):
        self.told.append(f"error: {error}")

    def spliced_refused(self, error, held=b""):
        self.told.append(f"refused: {error}" + (f", {held!r} handed back" if held else ""))


def open_descriptors() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


class SpliceEndsTests(SynchronousTestCase):
    """Every way a splice ends tells its direction, and leaves no descriptor, count or watch behind."""

    def setUp(self):
        if (why := kernel.unavailable()) is not None:
            self.skipTest(f"no kernel path here: {why}")
        self.live, self.pipes, self.fds = kernel.live, pipes.pipe_bytes, open_descriptors()

    def assert_nothing_left(self, reactor):
        self.assertEqual((kernel.live, pipes.pipe_bytes), (self.live, self.pipes))
        self.assertEqual((reactor.readers, reactor.writers), (set(), set()))

    def test_a_watch_the_reactor_drops_is_a_reset_for_the_direction(self):
        from twisted.python.failure import Failure

        owner, reactor = Owner(self), Watcher()
        splice = kernel.Splice(owner, reactor)
        self.assertEqual(reactor.readers, {splice.source})
        splice.source.connectionLost(Failure(ConnectionResetError()))  # (ERR/HUP without data)
        self.assertEqual(len(owner.told), 1)
        self.assertTrue(owner.told[0].startswith("error:"), owner.told)
        self.assertFalse(splice.running)
        splice.sink.connectionLost(Failure(ConnectionResetError()))  # a second one: told once only
        self.assertEqual(len(owner.told), 1)
        self.assert_nothing_left(reactor)

    def test_a_poller_that_refuses_the_watch_leaves_nothing_open(self):
        owner, reactor = Owner(self), Watcher(refuse=True)
        fds = open_descriptors()
        with self.assertRaises(OSError):
            kernel.Splice(owner, reactor)
        self.assertEqual(open_descriptors(), fds)
        self.assert_nothing_left(reactor)

    def test_a_socket_splice_refuses_at_its_first_byte_goes_back_to_user_space(self):
        owner, reactor = Owner(self), Watcher()
        splice = kernel.Splice(owner, reactor)
        with mock.patch.object(kernel.os, "splice", side_effect=OSError(22, "Invalid argument")):
            splice.pull()
        self.assertEqual(owner.told, ["refused: [Errno 22] Invalid argument"])
        self.assert_nothing_left(reactor)

    def test_a_writer_splice_refuses_gets_what_the_pipe_held_through_user_space(self):
        import os

        owner, reactor = Owner(self), Watcher()
        splice = kernel.Splice(owner, reactor)
        splice.in_pipe = os.write(splice.pipe_write, b"owed to the writer")
        with mock.patch.object(kernel.os, "splice", side_effect=OSError(22, "Invalid argument")):
            splice.push()
        self.assertEqual(
            owner.told, ["refused: [Errno 22] Invalid argument, b'owed to the writer' handed back"]
        )
        self.assert_nothing_left(reactor)

    def test_a_reset_once_bytes_moved_is_an_error_not_a_refusal(self):
        owner, reactor = Owner(self), Watcher()
        splice = kernel.Splice(owner, reactor)
        splice.moved = 5  # (bytes already went through: a failure now is the connection's)
        with mock.patch.object(kernel.os, "splice", side_effect=OSError(22, "Invalid argument")):
            splice.pull()
        self.assertEqual(owner.told, ["error: [Errno 22] Invalid argument"])
        self.assert_nothing_left(reactor)


class PipeBudgetTests(SynchronousTestCase):
    """The splices keep to half the user's pipe quota: big pipes first, the kernel's size, then none."""

    def setUp(self):
        if (why := kernel.unavailable()) is not None:
            self.skipTest(f"no kernel path here: {why}")

    def test_big_pipes_while_they_fit_then_the_kernels_size_then_no_splice(self):
        self.patch(pipes, "pipe_bytes", 0)
        self.patch(pipes, "_budget", 2 * pipes.PIPE_SIZE)
        first = pipes.Pipe()
        self.addCleanup(first.__exit__)
        if first.size != pipes.PIPE_SIZE:  # (this user's real quota is spent: no pipe grows)
            self.skipTest(f"a pipe of {pipes.PIPE_SIZE} bytes is refused here: the user's pipe quota")
        self.assertEqual(first.size, pipes.PIPE_SIZE)  # within half the budget
        second = pipes.Pipe()
        self.addCleanup(second.__exit__)
        self.assertEqual(second.size, pipes.DEFAULT_PIPE)  # past it: the kernel's own size
        self.assertTrue(kernel.room())
        self.patch(pipes, "pipe_bytes", 2 * pipes.PIPE_SIZE - pipes.DEFAULT_PIPE + 1)
        self.assertFalse(kernel.room())  # the budget is spent: user space serves the next stream
        self.patch(pipes, "pipe_bytes", first.size + second.size)
        first.__exit__()
        second.__exit__()
        second.__exit__()  # (closed once only)
        self.assertEqual(pipes.pipe_bytes, 0)

    def test_the_quota_is_read_from_the_kernel_or_there_is_none(self):
        self.patch(pipes, "_budget", False)
        budget = pipes.pipe_budget()
        self.assertTrue(budget is None or budget > 0)
        for euid, quota, expected in ((0, "16384\n", None), (1000, "16384\n", 16384 * 4096 // 2)):
            self.patch(pipes, "_budget", False)
            with (
                mock.patch.object(pipes.os, "geteuid", return_value=euid),
                mock.patch.object(pipes.os, "sysconf", return_value=4096),
                mock.patch("builtins.open", mock.mock_open(read_data=quota)),
            ):
                self.assertEqual(pipes.pipe_budget(), expected, euid)  # root is not held to it
        self.patch(pipes, "_budget", False)
        with (
            mock.patch.object(pipes.os, "geteuid", return_value=1000),
            mock.patch("builtins.open", side_effect=FileNotFoundError()),
        ):
            self.assertIsNone(pipes.pipe_budget())
