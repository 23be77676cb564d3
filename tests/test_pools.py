"""The pools of workers: their bounded, cancellable queue (a fake pool), the process pool's
replacement (a fake executor), and the real thread and process pools on trial's reactor.

Over 300 lines because the three share the fakes and helpers at the top, and each fake
is small only because the others exist: one subject, the pools' contract.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from types import SimpleNamespace

from twisted.internet import defer, reactor
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure

from poetrynow.servers.transform import processes
from poetrynow.servers.transform.costs import NO_COST, Busy, Cost, Done, Job, Stopped, worker_pid
from poetrynow.servers.transform.pool import Pooled, Ticket
from poetrynow.servers.transform.processes import (
    SHUTDOWN_ALONE,
    InProcesses,
    WorkerDied,
    how_to_end,
    shutdown_alone,
    terminate_processes,
    terminate_workers,
)
from poetrynow.servers.transform.workers import InThreads
from poetrynow.transforms import shout
from tests.time_limit import SynchronousTestCase, TestCase
from tests.worker_faults import die

DONE = Done(b"ABC", 10.0, 10.5, 4242, 7)
STOPPED = "the server stopped before the work was done"


def job(poem: bytes, cost: Cost = NO_COST) -> Job:
    return Job("shout", shout, poem, cost)


def outcome(deferred: defer.Deferred) -> list:
    """What ``deferred`` fires with, once it has: a list of one, else empty."""
    fired: list = []
    deferred.addBoth(fired.append)
    return fired


class HandOver(Pooled):
    """A pool whose workers are the test: it keeps what it was handed and what was called off."""

    place = "test"

    def __init__(self, workers: int, queue: int):
        super().__init__(None, workers, queue)
        self.begun: list[bytes] = []
        self.tickets: dict[bytes, Ticket] = {}
        self.called_off: list[bytes] = []
        self.ended = False

    def _start(self) -> None:
        pass

    def _end(self) -> None:
        self.ended = True

    def _begin(self, ticket: Ticket) -> None:
        self.begun.append(ticket.job.poem)
        self.tickets[ticket.job.poem] = ticket

    def _call_off(self, ticket: Ticket) -> None:
        self.called_off.append(ticket.job.poem)

    def _named(self, did: Done) -> Done:
        return replace(did, worker="fake 1")

    def give_back(self, poem: bytes, result=DONE) -> None:
        self._given_back(self.tickets[poem], result)


class QueueTests(SynchronousTestCase):
    def started(self, workers: int, queue: int) -> HandOver:
        pool = HandOver(workers, queue)
        pool.start()
        return pool

    def test_jobs_beyond_the_free_workers_wait_in_order_and_beyond_the_queue_are_refused(self):
        pool = self.started(workers=2, queue=4)
        runs = [outcome(pool.run(job(poem))) for poem in (b"a", b"b", b"c", b"d")]
        self.assertEqual(pool.begun, [b"a", b"b"])
        [busy] = outcome(pool.run(job(b"e")))
        self.assertTrue(busy.check(Busy))
        self.assertEqual(busy.getErrorMessage(), "busy: 4 transforms waiting")
        pool.give_back(b"b")
        self.assertEqual(runs[1][0].worker, "fake 1")
        self.assertEqual(pool.begun, [b"a", b"b", b"c"])
        self.assertEqual(runs[2:], [[], []])

    def test_a_cancelled_job_that_waits_leaves_the_queue_and_is_never_begun(self):
        pool = self.started(workers=1, queue=3)
        _, second, _ = (pool.run(job(poem)) for poem in (b"a", b"b", b"c"))
        cancelled = outcome(second)
        second.cancel()
        self.assertTrue(cancelled[0].check(defer.CancelledError))
        self.assertEqual((pool.held, pool.called_off), (2, []))
        pool.give_back(b"a")
        self.assertEqual(pool.begun, [b"a", b"c"])
        self.assertEqual(outcome(pool.run(job(b"d"))), [])  # its place is free: held, not refused

    def test_a_cancelled_job_at_work_is_called_off_and_holds_its_worker_until_given_back(self):
        pool = self.started(workers=1, queue=2)
        first = pool.run(job(b"a"))
        pool.run(job(b"b"))
        first.cancel()
        self.assertTrue(outcome(first)[0].check(defer.CancelledError))
        self.assertEqual(pool.called_off, [b"a"])
        self.assertTrue(outcome(pool.run(job(b"c")))[0].check(Busy))  # the worker is not free yet
        pool.give_back(b"a", Failure(Stopped("the work was called off")))  # fires nothing more
        self.assertEqual(pool.begun, [b"a", b"b"])

    def test_a_stop_fails_every_job_at_once_and_refuses_more(self):
        pool = self.started(workers=1, queue=3)
        held = [outcome(pool.run(job(poem))) for poem in (b"a", b"b")]
        pool.stop()
        self.assertTrue(pool.ended)
        self.assertEqual([fired[0].getErrorMessage() for fired in held], [STOPPED, STOPPED])
        self.assertEqual(sorted(pool.called_off), [b"a", b"b"])
        [refused] = outcome(pool.run(job(b"c")))
        self.assertTrue(refused.check(Stopped))
        pool.give_back(b"a")  # its worker, late: nothing


class AtOnce:
    """A reactor that calls what a pool's thread hands it at once: the test completes the futures."""

    def callFromThread(self, f, *args):
        f(*args)


class FakeExecutor:
    """A process pool whose futures the test completes; ``broken`` makes submit fail as a broken one does."""

    def __init__(self):
        self.futures: list[Future] = []
        self.broken = False
        self.shut = False

    def submit(self, fn, *args):
        if self.broken:
            raise BrokenProcessPool("A child process terminated abruptly")
        future: Future = Future()
        future.set_running_or_notify_cancel()  # handed to a worker at once: it cannot be cancelled
        self.futures.append(future)
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        self.shut = True


def broken(future: Future) -> None:
    future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))


class ReplacementTests(SynchronousTestCase):
    """A broken process pool is replaced once, off the reactor's thread (fake executors)."""

    def started(self, workers: int = 2, queue: int = 4) -> InProcesses:
        pool = InProcesses(AtOnce(), workers, queue)
        self.executors: list[FakeExecutor] = []
        self.background: list[tuple] = []  # (what to call in a thread, its Deferred)

        def start():
            self.executors.append(FakeExecutor())
            return self.executors[-1]

        def in_background(start):
            self.background.append((start, defer.Deferred()))
            return self.background[-1][1]

        self.patch(pool, "_started", start)
        self.patch(pool, "_in_background", in_background)
        pool.ending = shutdown_alone
        pool.start()
        return pool

    def restart(self, n: int = 0) -> None:
        """The thread that starts a new pool is done."""
        start, done = self.background[n]
        done.callback(start())

    def test_one_dead_worker_with_jobs_in_flight_starts_one_new_pool(self):
        pool = self.started(workers=2)
        a, b, c = (outcome(pool.run(job(poem))) for poem in (b"a", b"b", b"c"))
        [old] = self.executors
        with capturedLogs() as logs:
            broken(old.futures[0])  # every job the broken pool held comes back so
            broken(old.futures[1])
        died = "a worker process died while the work was under way"
        self.assertEqual([fired[0].getErrorMessage() for fired in (a, b)], [died, died])
        [event] = logs
        self.assertTrue(event["log_format"].startswith("A worker process died: the transforms its pool held"))
        self.assertTrue(old.shut)
        # One new pool, started in a thread, not here in the reactor's.
        self.assertEqual((len(self.background), len(self.executors)), (1, 1))
        [restarting] = outcome(pool.run(job(b"d")))
        self.assertEqual(
            restarting.getErrorMessage(), "the process pool is restarting: a worker process died"
        )
        self.restart()
        [old, new] = self.executors
        self.assertEqual(len(new.futures), 1)  # c waited, and kept its place
        new.futures[0].set_result(DONE)
        self.assertEqual((c[0].poem, c[0].worker), (b"ABC", "process 1"))

    def test_a_pool_found_broken_at_submit_keeps_the_job_for_the_next(self):
        pool = self.started(workers=1)
        self.executors[0].broken = True
        ran = outcome(pool.run(job(b"a")))
        self.assertEqual((ran, len(self.background)), ([], 1))
        self.restart()
        self.executors[1].futures[0].set_result(DONE)
        self.assertEqual(ran[0].poem, b"ABC")

    def test_a_new_pool_that_does_not_start_is_one_line_and_the_next_request_tries_again(self):
        pool = self.started(workers=1)
        under_way = outcome(pool.run(job(b"a")))
        waiting = outcome(pool.run(job(b"b")))
        broken(self.executors[0].futures[0])
        self.assertTrue(under_way[0].check(WorkerDied))
        with capturedLogs() as logs:
            self.background[0][1].errback(Failure(RuntimeError("the workers did not start within 60 s")))
        [event] = logs
        self.assertEqual(
            (event["log_level"], event["why"]), (LogLevel.warn, "the workers did not start within 60 s")
        )
        self.assertNotIn("log_failure", event)
        self.assertEqual(
            waiting[0].getErrorMessage(),
            "the process pool could not restart: the workers did not start within 60 s",
        )
        [refused] = outcome(pool.run(job(b"c")))
        self.assertTrue(refused.check(WorkerDied))
        self.assertEqual(len(self.background), 2)  # tried again
        self.restart(1)
        pool.run(job(b"d"))
        self.assertEqual(len(self.executors[-1].futures), 1)

    def test_a_stop_fails_what_a_pool_held_and_what_comes_back_later_is_nothing(self):
        pool = self.started(workers=1)
        held = [outcome(pool.run(job(poem))) for poem in (b"a", b"b")]
        [executor] = self.executors
        with capturedLogs() as logs:
            pool.stop()
            broken(executor.futures[0])  # as its ended worker makes it
        self.assertEqual([fired[0].getErrorMessage() for fired in held], [STOPPED, STOPPED])
        self.assertTrue(executor.shut)
        self.assertEqual((list(logs), self.background), ([], []))  # no traceback, no new pool
        self.assertTrue(outcome(pool.run(job(b"c")))[0].check(Stopped))

    def test_a_stop_while_a_new_pool_starts_ends_it(self):
        pool = self.started(workers=1)
        under_way = outcome(pool.run(job(b"a")))
        broken(self.executors[0].futures[0])
        self.assertTrue(under_way[0].check(WorkerDied))
        pool.stop()
        self.restart()
        self.assertTrue(self.executors[1].shut)
        self.assertIsNone(pool.pool)


class Dead:
    def is_alive(self):
        raise ValueError("process object is closed")


class Gone:
    def is_alive(self):
        return True

    def terminate(self):
        raise ProcessLookupError(3, "No such process")


class Alive:
    terminated = False

    def is_alive(self):
        return True

    def terminate(self):
        self.terminated = True


class EndingTests(SynchronousTestCase):
    """How the workers are ended: a private name, checked when the pool starts, with a public fallback."""

    def test_the_start_up_check_finds_this_python_s_way(self):
        pool = ProcessPoolExecutor(1)  # starts no process until a job is submitted
        self.addCleanup(pool.shutdown)
        expected = terminate_workers if hasattr(pool, "terminate_workers") else terminate_processes
        with capturedLogs() as logs:
            self.assertIs(how_to_end(pool), expected)
        self.assertEqual(list(logs), [])

    def test_without_either_name_it_is_shutdown_alone_said_in_one_line(self):
        calls = []
        pool = SimpleNamespace(shutdown=lambda **how: calls.append(how))
        with capturedLogs() as logs:
            ending = how_to_end(pool)  # type: ignore[arg-type]
        self.assertIs(ending, shutdown_alone)
        self.assertEqual([e["log_format"] for e in logs], [SHUTDOWN_ALONE])
        ending(pool)  # type: ignore[arg-type]
        self.assertEqual(calls, [{"wait": False, "cancel_futures": True}])

    def test_processes_already_closed_or_gone_are_passed_over(self):
        alive = Alive()
        calls = []
        pool = SimpleNamespace(
            _processes={1: Dead(), 2: Gone(), 3: alive}, shutdown=lambda **how: calls.append(how)
        )
        terminate_processes(pool)  # type: ignore[arg-type]
        self.assertTrue(alive.terminated)
        self.assertEqual(calls, [{"wait": False, "cancel_futures": True}])


def recorder(ran: list):
    def record(poem: str) -> str:
        ran.append(poem)
        return poem

    return record


class RealPoolTests(TestCase):
    """The real pools, their Deferreds fired in trial's reactor."""

    def started(self, kind, workers: int, queue: int):
        """A pool of ``kind`` (InThreads, InProcesses), running until the test ends."""
        pool = kind(reactor, workers, queue)
        pool.start()
        self.addCleanup(pool.stop)
        return pool

    @defer.inlineCallbacks
    def test_a_thread_pool_names_its_threads_and_a_stop_ends_a_long_wait(self):
        workers = self.started(InThreads, 2, 8)
        done = yield workers.run(job(b"abc", Cost(0.01)))
        self.assertEqual((done.poem, done.worker, done.pid), (b"ABC", "thread 1", os.getpid()))
        self.assertNotEqual(done.thread, threading.get_ident())
        long = workers.run(job(b"abc", Cost(3600, "cpu")))
        workers.stop()  # joins its threads: the hour's spin ends at once, or this test would hang
        yield self.assertFailure(long, Stopped)

    @defer.inlineCallbacks
    def test_a_thread_job_called_off_frees_its_thread_at_once(self):
        workers = self.started(InThreads, 1, 2)
        long = workers.run(job(b"abc", Cost(3600, "wait")))
        after = workers.run(job(b"def"))
        long.cancel()  # its client went: the hour's wait ends, or this test would hang
        yield self.assertFailure(long, defer.CancelledError)
        done = yield after
        self.assertEqual(done.poem, b"DEF")

    @defer.inlineCallbacks
    def test_a_thread_job_cancelled_while_it_waits_is_never_run(self):
        workers = self.started(InThreads, 1, 3)
        ran: list[str] = []
        first = workers.run(job(b"abc", Cost(3600, "wait")))
        second = workers.run(Job("record", recorder(ran), b"abc"))
        second.cancel()
        first.cancel()
        yield self.assertFailure(first, defer.CancelledError)
        yield self.assertFailure(second, defer.CancelledError)
        yield workers.run(job(b"abc"))  # after the others, in order
        self.assertEqual(ran, [])

    @defer.inlineCallbacks
    def test_one_dead_worker_starts_one_new_pool(self):
        workers = self.started(InProcesses, 2, 4)
        starts = []
        real = workers._started
        self.patch(workers, "_started", lambda: starts.append(1) or real())
        with capturedLogs() as logs:
            under_way = workers.run(job(b"abc", Cost(60, "wait")))  # first: surely in the pool that breaks
            dying = workers.run(Job("die", die, b"poem"))
            waiting = workers.run(job(b"def"))  # no worker free: it waits here
            yield self.assertFailure(under_way, WorkerDied)
            refused = workers.run(job(b"ghi"))  # while the new pool starts
            self.assertTrue(outcome(refused)[0].check(WorkerDied))
            yield self.assertFailure(dying, WorkerDied)
            done = yield waiting
        self.assertEqual((done.poem, done.worker), (b"DEF", "process 1"))
        self.assertNotEqual(done.pid, os.getpid())
        self.assertEqual(starts, [1])
        self.assertEqual(sum(e.get("log_format", "").startswith("A worker process died") for e in logs), 1)

    @defer.inlineCallbacks
    def test_a_stop_with_work_in_flight_fails_it_all_at_once_without_a_traceback(self):
        workers = self.started(InProcesses, 1, 2)
        under_way = outcome(workers.run(job(b"abc", Cost(3600, "wait"))))
        waiting = outcome(workers.run(job(b"def")))
        [ticket] = workers.at_work
        came_back: defer.Deferred = defer.Deferred()
        ticket.future.add_done_callback(lambda _: reactor.callFromThread(came_back.callback, None))
        with capturedLogs() as logs:
            workers.stop()  # its worker is ended, not waited for: the hour's wait would hang this test
            self.assertEqual([fired[0].getErrorMessage() for fired in (under_way, waiting)], [STOPPED] * 2)
            self.assertTrue(outcome(workers.run(job(b"ghi")))[0].check(Stopped))
            yield came_back  # the ended worker's future, settled after it: nothing more
        self.assertEqual([e for e in logs if e.get("log_namespace", "").startswith("poetrynow")], [])

    @defer.inlineCallbacks
    def test_without_the_private_name_the_fallback_is_said_and_used(self):
        self.patch(processes, "PROCESSES", "_no_such_name")
        self.patch(processes, "TERMINATE", "_nor_this_one")
        with capturedLogs() as logs:
            workers = self.started(InProcesses, 1, 2)
        self.assertEqual([e["log_format"] for e in logs], [SHUTDOWN_ALONE])
        self.assertIs(workers.ending, shutdown_alone)
        done = yield workers.run(job(b"abc"))
        self.assertEqual(done.poem, b"ABC")
        pool = workers.pool
        workers.stop()
        self.assertRaises(RuntimeError, pool.submit, worker_pid)  # shut down
