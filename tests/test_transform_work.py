"""The transform server answers when the work is done: fake workers through StringTransport,
and the real thread and process pools on trial's reactor."""

from __future__ import annotations

import os
import threading
from concurrent.futures.process import BrokenProcessPool

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure

from poetrynow.netstring import encode
from poetrynow.servers.costs import Cost, Done, Job, Stopped
from poetrynow.servers.transform import TransformFactory, TransformService
from poetrynow.servers.workers import InProcesses, InThreads
from poetrynow.servers.worklog import read_work_log
from poetrynow.transforms import TransformError, shout
from tests.support import temp_dir
from tests.time_limit import SynchronousTestCase, TestCase
from tests.worker_faults import die


class LaterWorkers:
    """Workers whose every job waits until the test says how it ended."""

    place = "test"

    def __init__(self):
        self.pending: list[tuple[Job, defer.Deferred]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, job: Job) -> defer.Deferred:
        done: defer.Deferred = defer.Deferred()
        self.pending.append((job, done))
        return done

    def finish(self, poem: bytes = b"ABC") -> None:
        _, done = self.pending.pop(0)
        done.callback(Done(poem, 10.0, 10.5, 4242, 7, "thread 1"))

    def fail(self, problem: Exception) -> None:
        _, done = self.pending.pop(0)
        done.errback(Failure(problem))


class AnswerWhenDoneTests(SynchronousTestCase):
    def connect(self, work_log: str | None = None):
        self.workers = LaterWorkers()
        service = TransformService(workers=self.workers, work_log=work_log)
        service.startService()
        self.addCleanup(service.stopService)
        protocol = TransformFactory(service, clock=task.Clock()).buildProtocol(None)
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

    def test_a_client_that_half_closes_meanwhile_still_gets_its_answer(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        protocol.readConnectionLost()
        self.workers.finish(b"ABC")
        self.assertEqual(transport.value(), b"3:ABC,")

    def test_a_client_that_went_away_meanwhile_gets_nothing_written(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        protocol.connectionLost(Failure(ConnectionDone()))
        with capturedLogs() as logs:
            self.workers.finish(b"ABC")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(list(logs), [])

    def test_a_failed_transform_is_a_refusal_in_one_line(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"explode.abc"))
        with capturedLogs() as logs:
            self.workers.fail(TransformError("explode failed: this transform always explodes"))
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
        [event] = logs
        self.assertEqual(event["why"], "explode failed: this transform always explodes")
        self.assertNotIn("log_failure", event)

    def test_a_stopping_server_refuses_in_one_line(self):
        protocol, _ = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        with capturedLogs() as logs:
            self.workers.fail(Stopped("the server stopped before the work was done"))
        self.assertEqual([e["why"] for e in logs], ["the server stopped before the work was done"])

    def test_a_bug_in_the_work_is_a_refusal_with_its_traceback(self):
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc"))
        with capturedLogs() as logs:
            self.workers.fail(BrokenProcessPool("A process in the process pool was terminated abruptly"))
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
        [event] = logs
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertTrue(event["log_format"].startswith("Refused {peer}"))
        self.assertTrue(event["log_failure"].check(BrokenProcessPool))
        self.flushLoggedErrors(BrokenProcessPool)

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


class PoolTests(TestCase):
    """The real pools, their Deferreds fired in trial's reactor."""

    @defer.inlineCallbacks
    def test_a_thread_pool_names_its_threads_and_a_stop_ends_a_long_wait(self):
        workers = InThreads(reactor, 2)
        workers.start()
        self.addCleanup(workers.stop)
        done = yield workers.run(Job("shout", shout, b"abc", Cost(0.01)))
        self.assertEqual((done.poem, done.worker, done.pid), (b"ABC", "thread 1", os.getpid()))
        self.assertNotEqual(done.thread, threading.get_ident())
        long = workers.run(Job("shout", shout, b"abc", Cost(3600, "cpu")))
        workers.stop()  # joins its threads: the hour's spin ends at once, or this test would hang
        yield self.assertFailure(long, Stopped)

    @defer.inlineCallbacks
    def test_a_broken_process_pool_refuses_what_it_held_and_is_replaced(self):
        workers = InProcesses(reactor, 1)
        workers.start()
        self.addCleanup(workers.stop)
        yield self.assertFailure(workers.run(Job("die", die, b"poem")), BrokenProcessPool)
        done = yield workers.run(Job("shout", shout, b"abc"))
        self.assertEqual((done.poem, done.worker), (b"ABC", "process 1"))
        self.assertNotEqual(done.pid, os.getpid())
