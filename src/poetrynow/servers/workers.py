"""Where a transform's work runs: in the reactor's thread, in a thread pool, or in processes.

Part 20's warning, and its two ways out:

- :class:`InLoop`: in the reactor's thread. While it works, no other client is
  read, written or accepted: a blocking wait there serialises every client.
- :class:`InThreads`: a Twisted thread pool, through ``deferToThreadPool``. Waits
  overlap; Python work does not, for only the thread holding the GIL computes.
- :class:`InProcesses`: a process pool. Each worker has its own interpreter and
  GIL, so CPU work spreads over the cores.

Each hands back a Deferred that fires in the reactor's thread with what the
worker did (:class:`~poetrynow.servers.costs.Done`), its worker named as the work
log names it: ``main thread``, ``thread N``, ``process N``, numbered in the order
each is first seen.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from poetrynow.servers.costs import PLACES, Done, Job, work, worker_pid

#: Threads in a pool, unless told: as many as the reactor's own pool has.
THREADS = 10
#: Seconds the process pool may take to start all its workers: a hang detector.
WARM_WITHIN = 60.0
MAIN = "main thread"

log = Logger()


class FirstSeen:
    """Names workers ``thread 1``, ``thread 2``... in the order each is first seen."""

    def __init__(self, word: str):
        self.word = word
        self.seen: dict[int, int] = {}

    def __call__(self, key: int) -> str:
        return f"{self.word} {self.seen.setdefault(key, len(self.seen) + 1)}"


class InLoop:
    """The work in the reactor's own thread: every other client waits while it works."""

    place = "loop"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, job: Job) -> Deferred[Done]:
        return maybeDeferred(work, job).addCallback(replace, worker=MAIN)


class InThreads:
    """The work in a Twisted thread pool of its own, started and stopped with the service.

    A thread cannot be stopped from outside, so the cost is spent against an
    event that :meth:`stop` sets: a wait or a spin under way ends at once, rather
    than hold the server's exit for its S seconds.
    """

    place = "thread"

    def __init__(self, reactor: Any, workers: int = THREADS):
        self.reactor = reactor
        self.workers = workers
        self.names = FirstSeen("thread")
        self.stopping = threading.Event()
        self.pool: ThreadPool | None = None

    def start(self) -> None:
        self.stopping.clear()
        self.pool = ThreadPool(minthreads=0, maxthreads=self.workers, name="transform")
        self.pool.start()

    def stop(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            self.stopping.set()
            pool.stop()

    def run(self, job: Job) -> Deferred[Done]:
        if self.pool is None:
            return fail(RuntimeError("the thread pool is not running"))
        done = deferToThreadPool(self.reactor, self.pool, work, job, self.stopping)
        return done.addCallback(lambda did: replace(did, worker=self.names(did.thread)))


def start_method() -> str:
    """forkserver where there is one, else spawn; never fork.

    Forking copies a process that runs threads (the reactor's, the pool's own)
    with whatever locks they held at that moment, and Python deprecates it.
    """
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def ready(everyone: Any) -> None:
    """Each worker process's first act: Ctrl-C is for the server, not for its workers
    (the terminal sends it to them all); then wait until every worker has started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    everyone.wait(WARM_WITHIN)


class InProcesses:
    """The work in a process pool: ``concurrent.futures``, its futures turned into Deferreds.

    A future's done-callback runs in the pool's own thread; it hands the result
    to the reactor with ``callFromThread``, which fires the Deferred there. A pool
    that breaks (a worker died) fails the requests it held and is replaced.
    """

    place = "process"

    def __init__(self, reactor: Any, workers: int | None = None):
        self.reactor = reactor
        self.workers = workers or os.cpu_count() or 1
        self.names = FirstSeen("process")
        self.pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        self.pool = self._started()

    def _started(self) -> ProcessPoolExecutor:
        """A pool whose every worker is running: the first requests do not pay to start one.

        A pool of this start method starts a worker per job while none is idle,
        and each worker's start waits for the others (:func:`ready`), so that no
        warm-up job is done, and its worker idle, before every job has asked for one.
        """
        context = multiprocessing.get_context(start_method())
        pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=ready, initargs=(context.Barrier(self.workers),)
        )
        warming = [pool.submit(worker_pid) for _ in range(self.workers)]
        _, late = wait_for_futures(warming, WARM_WITHIN)
        if late:
            end_pool(pool)
            raise RuntimeError(f"the process pool's workers did not start within {WARM_WITHIN:g} s")
        for job in warming:
            job.result()  # a pool that broke while starting says so here
        return pool

    def stop(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            end_pool(pool)

    def run(self, job: Job) -> Deferred[Done]:
        if self.pool is None:
            return fail(RuntimeError("the process pool is not running"))
        try:
            future = self.pool.submit(work, job)
        except BrokenProcessPool as broken:
            self._replace()
            return fail(broken)

        def cancel(_: Deferred) -> None:
            future.cancel()  # a job not yet begun is never run; one under way runs on, unanswered

        done: Deferred[Done] = Deferred(cancel)
        future.add_done_callback(lambda _: self.reactor.callFromThread(self._settle, done, future))
        return done

    def _settle(self, done: Deferred[Done], future: Future) -> None:
        """In the reactor's thread: fire ``done`` with what the future came to."""
        if done.called or future.cancelled():  # cancelled: the Deferred has had its CancelledError
            return
        problem = future.exception()
        if problem is None:
            did = future.result()
            done.callback(replace(did, worker=self.names(did.pid)))
            return
        if isinstance(problem, BrokenProcessPool):
            self._replace()
        done.errback(Failure(problem))

    def _replace(self) -> None:
        """A worker died: the pool is broken for good. A new one starts with the next request."""
        if self.pool is None:
            return
        log.warn("A worker process died; the requests it held are refused, and a new pool starts")
        end_pool(self.pool)
        try:
            self.pool = self._started()
        except Exception:
            log.failure("The new process pool did not start")
            self.pool = None


def end_pool(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down without waiting: queued jobs are cancelled, the workers ended.

    ``shutdown(wait=False)`` leaves a worker to finish its job, and the
    interpreter's exit waits for it: S seconds, or a week. Its processes are ours
    to end (Python 3.14 has ``terminate_workers`` for this; before it, the pool's
    own list of them).
    """
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()  # shutdown(wait=False, cancel_futures=True), then each worker's terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


def placement(place: str, reactor: Any = None, workers: int | None = None):
    """The workers for ``place`` (one of :data:`PLACES`); ``workers`` threads or processes."""
    if reactor is None:
        from twisted.internet import reactor
    if place == "loop":
        return InLoop()
    if place == "thread":
        return InThreads(reactor, workers or THREADS)
    if place == "process":
        return InProcesses(reactor, workers)
    raise ValueError(f"the work runs in one of {', '.join(PLACES)}, not {place!r}")
