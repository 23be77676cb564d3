"""The transform server answers when the work is done: fake workers through StringTransport,
and a server whose queue is full or whose client has gone, over real sockets."""

from __future__ import annotations

import os
from unittest import SkipTest

from twisted.internet import defer, reactor, task, threads
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure

from poetrynow.netstring import encode
from poetrynow.servers import deploy
from poetrynow.servers.common.listen import Where, reset_on_close
from poetrynow.servers.transform.costs import Busy, Cost, Done, Job, Stopped
from poetrynow.servers.transform.processes import WorkerDied
from poetrynow.servers.transform.server import TransformFactory, TransformService
from poetrynow.servers.transform.worklog import read_work_log
from poetrynow.transforms import TransformError
from tests.support import connect, exchange, temp_dir
from tests.time_limit import SynchronousTestCase, TestCase


class LaterWorkers:
    """Workers whose every job waits until the test says how it ended; they hold at most ``queue``."""

    place = "test"

    def __init__(self, queue: int = 1):
        self.queue = queue
        self.pending: list[tuple[Job, defer.Deferred]] = []
        self.cancelled: list[Job] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, job: Job) -> defer.Deferred:
        done: defer.Deferred = defer.Deferred(lambda _: self.cancelled.append(job))
        self.pending.append((job, done))
        return done

    def finish(self, poem: bytes = b"ABC") -> None:
        """The first job is done; a cancelled one's Deferred is not fired again (as the pools do)."""
        _, done = self.pending.pop(0)
        if not done.called:
            done.callback(Done(poem, 10.0, 10.5, 4242, 7, "thread 1"))

    def fail(self, problem: Exception) -> None:
        _, done = self.pending.pop(0)
        done.errback(Failure(problem))


class AnswerWhenDoneTests(SynchronousTestCase):
    def connect(self, work_log: str | None = None, cost: float = 0.0, timeout: float | None = 60.0):
        self.workers = LaterWorkers(queue=3)
        self.service = TransformService(workers=self.workers, work_log=work_log, cost=Cost(cost))
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.clock = task.Clock()
        self.factory = TransformFactory(self.service, timeout=timeout, clock=self.clock, log_clients=False)
        return self.another()

    def another(self):
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_the_answer_waits_for_the_work(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        self.assertEqual((transport.value(), transport.disconnecting), (b"", False))
        self.assertEqual(self.workers.pending[0][0].name, "shout")
        self.workers.finish(b"ABC")
        self.assertEqual(transport.value(), b"3:ABC,")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])  # the work's timer went with it

    def test_a_client_that_half_closes_meanwhile_still_gets_its_answer(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        protocol.readConnectionLost()
        self.workers.finish(b"ABC")
        self.assertEqual(transport.value(), b"3:ABC,")

    def test_a_client_that_went_away_meanwhile_cancels_its_work_and_gets_nothing_written(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        with capturedLogs() as logs:
            protocol.connectionLost(Failure(ConnectionDone()))
            self.assertEqual([job.name for job in self.workers.cancelled], ["shout"])
            self.workers.finish(b"ABC")  # a worker that finishes anyway: nobody is answered
        self.assertEqual(transport.value(), b"")
        self.assertEqual(list(logs), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_the_wait_for_the_work_has_a_limit(self):
        # --timeout 5, a cost of 2 s, and workers that may hold 3 transforms, which may take turns.
        protocol, transport = self.connect(cost=2.0, timeout=5)
        self.clock.advance(4)  # the request comes within its own timeout...
        protocol.dataReceived(encode(b"shout.abc"))
        with capturedLogs() as logs:
            self.clock.advance(10.9)  # ...and the work's starts: 5 + 2 x 3 s
            self.assertFalse(transport.disconnecting)
            self.clock.advance(0.2)
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
        self.assertEqual([e["why"] for e in logs], ["no answer from the work within 11 s"])
        self.assertEqual([job.name for job in self.workers.cancelled], ["shout"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_without_a_timeout_the_work_is_waited_for(self):
        protocol, transport = self.connect(cost=2.0, timeout=None)
        protocol.dataReceived(encode(b"shout.abc"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.workers.finish(b"ABC")
        self.assertEqual(transport.value(), b"3:ABC,")

    def test_a_failed_transform_is_a_refusal_in_one_line(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"explode.abc"))
        with capturedLogs() as logs:
            self.workers.fail(TransformError("explode failed: this transform always explodes"))
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
        [event] = logs
        self.assertEqual(event["why"], "explode failed: this transform always explodes")
        self.assertNotIn("log_failure", event)

    def test_refusals_of_the_workers_are_one_line_each(self):
        for problem in (
            Stopped("the server stopped before the work was done"),
            Busy("busy: 3 transforms waiting"),
            WorkerDied("a worker process died while the work was under way"),
        ):
            with self.subTest(problem):
                protocol, transport = self.connect()
                protocol.dataReceived(encode(b"shout.abc"))
                with capturedLogs() as logs:
                    self.workers.fail(problem)
                self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
                [event] = logs
                self.assertEqual((event["log_level"], event["why"]), (LogLevel.warn, str(problem)))
                self.assertNotIn("log_failure", event)

    def test_a_bug_in_the_work_is_a_refusal_with_its_traceback(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        with capturedLogs() as logs:
            self.workers.fail(ZeroDivisionError("a bug"))
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
        [event] = logs
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertTrue(event["log_format"].startswith("Refused {peer}"))
        self.assertTrue(event["log_failure"].check(ZeroDivisionError))
        self.flushLoggedErrors(ZeroDivisionError)

    def test_an_unknown_transform_costs_no_work(self):
        protocol, transport = self.connect()
        with capturedLogs() as logs:
            protocol.dataReceived(encode(b"sonnetify.abc"))
        self.assertEqual(self.workers.pending, [])
        self.assertEqual([e["why"] for e in logs], ["unknown transform 'sonnetify'"])
        self.assertTrue(transport.disconnecting)

    def test_the_work_log_has_a_line_per_transform_done(self):
        path = os.path.join(temp_dir(self), "work.jsonl")
        protocol, _ = self.connect(work_log=path)
        protocol.dataReceived(encode(b"shout.abc"))
        self.workers.finish(b"ABC")
        self.assertEqual(
            read_work_log(path),
            [
                {
                    "began": 10.0,
                    "ended": 10.5,
                    "worker": "thread 1",
                    "pid": 4242,
                    "transform": "shout",
                    "bytes": 3,
                }
            ],
        )

    def test_a_full_disk_costs_the_work_log_not_the_poems(self):
        if not os.path.exists("/dev/full"):
            raise SkipTest("no /dev/full here")
        clients = [self.connect(work_log="/dev/full"), self.another()]
        with capturedLogs() as logs:
            for protocol, transport in clients:
                protocol.dataReceived(encode(b"shout.abc"))
                self.workers.finish(b"ABC")
                self.assertEqual(transport.value(), b"3:ABC,")
            self.service.stopService()  # closes the log: not a word more
        [event] = logs  # once
        self.assertEqual((event["log_level"], event["why"]), (LogLevel.warn, "No space left on device"))
        self.assertNotIn("log_failure", event)


class Calls:
    """Each call of an object's method, as a Deferred a test can wait for, in turn."""

    def __init__(self, case, owner, name: str):
        self.calls = self.taken = 0
        self.waiting: list[defer.Deferred] = []
        real = getattr(owner, name)

        def spy(*args, **kwargs):
            result = real(*args, **kwargs)
            self.calls += 1
            self._fire()
            return result

        case.patch(owner, name, spy)

    def next(self) -> defer.Deferred:
        """Fires once the method has been called once more than the Deferreds before this one waited for."""
        waiting: defer.Deferred = defer.Deferred()
        self.waiting.append(waiting)
        self._fire()
        return waiting

    def _fire(self) -> None:
        while self.waiting and self.taken < self.calls:
            self.taken += 1
            self.waiting.pop(0).callback(None)


class QueueOverSocketsTests(TestCase):
    """``--queue`` and a gone client's work over real sockets, the server on trial's reactor."""

    @defer.inlineCallbacks
    def test_one_more_than_the_queue_is_refused_and_a_gone_client_frees_its_place(self):
        tree = deploy.transformed_poetry(
            Where(0, "127.0.0.1"), cost=Cost(3600), cost_in="thread", workers=1, queue=1, log_clients=False,
            reactor=reactor,
        )  # fmt: skip
        tree.startService()
        self.addCleanup(lambda: tree.running and tree.stopService())
        pool = tree.held.workers
        began, given_back = Calls(self, pool, "_begin"), Calls(self, pool, "_given_back")
        request = encode(b"shout.abc")
        first = connect(tree.listener.port, request)  # an hour's wait, at work
        self.addCleanup(first.close)
        yield began.next()
        with capturedLogs() as logs:
            second = yield threads.deferToThread(exchange, tree.listener.port, request)
        self.assertEqual(second, (b"", "closed"))
        self.assertEqual([e.get("why") for e in logs], ["busy: 1 transform waiting"])
        # The first client goes: a reset (its FIN alone would only say it has no more to send).
        reset_on_close(first)
        first.close()
        yield given_back.next()  # its work called off: the hour's wait ended at once
        self.assertEqual(pool.held, 0)
        third = threads.deferToThread(exchange, tree.listener.port, request)
        yield began.next()  # taken, not refused
        with capturedLogs() as logs:
            yield tree.stopService()
            self.assertEqual((yield third), (b"", "closed"))
        self.assertIn("the server stopped before the work was done", [e.get("why") for e in logs])
