"""The transform's work in a process pool: ``concurrent.futures``, its futures turned into Deferreds.

Each worker has its own interpreter and GIL, so CPU work spreads over the
cores. A future's done-callback runs in the pool's own thread; it hands the
outcome to the reactor with ``callFromThread``, which fires the Deferred there.

A worker that dies breaks the pool for good: the jobs it held are refused in a
line each, the pool is ended and a new one started, once, in a thread (starting
one waits for its workers, which the reactor's thread must not), and requests
are refused in a line while it starts. Jobs still waiting keep their place. A
new pool that does not start is one warning line; the next request tries again.

Over 300 lines as one piece: starting, watching, ending and replacing the pool share
one state (the pool serving, the one starting, the jobs waiting), and the races
between them are read in one file or missed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from poetrynow.servers.transform.costs import Done, Refused, Stopped, work, worker_pid
from poetrynow.servers.transform.pool import FirstSeen, Pooled, Ticket, usable_cores
from poetrynow.stopping import end_when_orphaned

#: Seconds the process pool may take to start all its workers: a hang detector.
WARM_WITHIN = 60.0
#: Python 3.14's public way to end a pool's workers, and before it, the pool's own
#: dict of them (a private name: docs/design.md, "private names"). Names, so that a
#: test can hide them.
TERMINATE = "terminate_workers"
PROCESSES = "_processes"
#: The one line said when neither is there.
SHUTDOWN_ALONE = (
    "The process pool's workers will be ended by shutdown alone: this Python's ProcessPoolExecutor "
    "has neither terminate_workers nor _processes, so a transform under way when the server stops "
    "is done first, and the exit waits for it"
)

log = Logger()

Ending = Callable[[ProcessPoolExecutor], None]


class WorkerDied(Refused):
    """A worker process died (killed, out of memory): its pool is broken and being replaced."""


def start_method() -> str:
    """spawn: never fork, and not forkserver either.

    Forking copies a process that runs threads (the reactor's, the pool's own)
    with whatever locks they held at that moment, and Python deprecates it.
    forkserver's workers are the fork server's children, not ours: one that
    ends is reaped at once, its pid free for any new process, and the pool's
    ``terminate()`` at a stop (by pid) can then land on a stranger (a test
    suite's other commands were seen killed so). A spawned worker is our child:
    until we reap it, its pid is its own. It costs a fresh interpreter per worker,
    once, at start-up.
    """
    return "spawn"


def ready(everyone: Any, parent: int | None = None) -> None:
    """Each worker process's first act: Ctrl-C is for the server, not for its workers
    (the terminal sends it to them all); a watch that ends the worker with its server
    (:func:`end_with`); then wait until every worker has started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        end_with(parent)
    everyone.wait(WARM_WITHIN)


def end_with(parent: int) -> None:
    """End this worker as soon as ``parent`` (its server) is no longer its parent.

    A clean stop ends the workers through the pool; a server killed by SIGKILL (or
    by a crash) has no stop, and its workers, waiting on a queue whose write end they
    hold themselves, would wait for ever: a watch of the parent's pid
    (:func:`poetrynow.stopping.end_when_orphaned`) ends them. Linux's
    PR_SET_PDEATHSIG is not used: it fires when the *thread* that started the worker
    ends, and a replacement pool is started from a thread of the reactor's pool.
    """
    end_when_orphaned(parent, lambda: os._exit(1))


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Python 3.14: shutdown(wait=False, cancel_futures=True), then each worker's terminate()."""
    getattr(pool, TERMINATE)()


def terminate_processes(pool: ProcessPoolExecutor) -> None:
    """What ``terminate_workers`` does, before 3.14: through the pool's own dict of its processes.

    A process may be closed (ValueError) or gone (ProcessLookupError) by the time it is asked.
    """
    processes = list(dict(getattr(pool, PROCESSES, None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            if process.is_alive():
                process.terminate()
        except (ValueError, OSError):
            pass


def shutdown_alone(pool: ProcessPoolExecutor) -> None:
    """The public fallback: queued jobs are cancelled, but a worker under way finishes its job."""
    pool.shutdown(wait=False, cancel_futures=True)


def how_to_end(pool: ProcessPoolExecutor) -> Ending:
    """The start-up check: how this Python lets a pool's workers be ended, not waited for.

    ``shutdown(wait=False)`` leaves a worker to finish its job, and the
    interpreter's exit waits for it: S seconds, or a week. So its processes are
    ended: with ``terminate_workers`` (3.14), else through ``_processes`` if it is
    the dict it has been since 3.2; else shutdown alone, said in one line.
    """
    if callable(getattr(pool, TERMINATE, None)):
        return terminate_workers
    if isinstance(getattr(pool, PROCESSES, None), dict):
        return terminate_processes
    log.warn(SHUTDOWN_ALONE)
    return shutdown_alone


@contextmanager
def stderr_with_a_descriptor() -> Iterator[None]:
    """``sys.stderr`` with a real descriptor while multiprocessing starts its helpers.

    multiprocessing's resource tracker, started with the first pool, is handed
    ``sys.stderr.fileno()`` to write its warnings to. Under twistd, ``sys.stderr``
    is a log file with no descriptor (``fileno()`` says -1, or raises), and the
    start fails: "bad value(s) in fds_to_keep". For that moment, stderr is the
    process's own, or else /dev/null.
    """
    try:
        usable = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable:
        yield
        return
    swapped = sys.stderr
    spare = None
    try:
        real = sys.__stderr__ is not None and sys.__stderr__.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        real = False
    if real:
        sys.stderr = sys.__stderr__
    else:
        spare = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    try:
        yield
    finally:
        sys.stderr = swapped
        if spare is not None:
            spare.close()


class InProcesses(Pooled):
    """The work in a process pool of ``workers`` processes (default: one per usable core)."""

    place = "process"

    def __init__(self, reactor: Any, workers: int | None = None, queue: int | None = None):
        super().__init__(reactor, workers or usable_cores(), queue)
        self.names = FirstSeen("process")
        self.pool: ProcessPoolExecutor | None = None
        self.restarting: Deferred[ProcessPoolExecutor] | None = None
        self.ending: Ending | None = None  # found by the start-up check, with the first pool

    def _start(self) -> None:
        with stderr_with_a_descriptor():  # the first pool starts multiprocessing's helper processes
            self.pool = self._started()  # in the reactor's thread: nothing is served until it has

    def _started(self) -> ProcessPoolExecutor:
        """A pool whose every worker is running: the first requests do not pay to start one.

        A pool of this start method starts a worker per job while none is idle,
        and each worker's start waits for the others (:func:`ready`), so that no
        warm-up job is done, and its worker idle, before every job has asked for one.
        """
        context = multiprocessing.get_context(start_method())
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=ready,
            initargs=(context.Barrier(self.workers), os.getpid()),
        )
        if self.ending is None:
            self.ending = how_to_end(pool)
        try:
            warming = [pool.submit(worker_pid) for _ in range(self.workers)]
            _, late = wait_for_futures(warming, WARM_WITHIN)
            if late:
                raise RuntimeError(f"the process pool's workers did not start within {WARM_WITHIN:g} s")
            for job in warming:
                job.result()  # a pool that broke while starting says so here
        except BaseException:
            self.ending(pool)
            raise
        return pool

    def _end(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            self._end_pool(pool)

    def _end_pool(self, pool: ProcessPoolExecutor) -> None:
        (self.ending or shutdown_alone)(pool)

    def _refusal(self) -> Refused | None:
        why = super()._refusal()
        if why is None and self.pool is None:
            if self.restarting is None:  # the last restart failed: this request tries again
                self._start_again()
            why = WorkerDied("the process pool is restarting: a worker process died")
        return why

    def _can_hand_out(self) -> bool:
        return self.running and self.pool is not None

    def _begin(self, ticket: Ticket) -> None:
        pool = self.pool
        assert pool is not None  # handed out only while there is one
        try:
            future = pool.submit(work, ticket.job)
        except BrokenProcessPool:  # a worker died since the last job came back
            # This job has not begun: it waits for the new pool, first in line.
            self.at_work.discard(ticket)
            self.waiting.appendleft(ticket)
            self._broke(pool)
            return
        ticket.future = future
        future.add_done_callback(lambda _: self.reactor.callFromThread(self._settle, pool, ticket, future))

    def _call_off(self, ticket: Ticket) -> None:
        if ticket.future is not None:
            ticket.future.cancel()  # a job not yet begun is never run; one under way runs on, unanswered

    def _named(self, did: Done) -> Done:
        return replace(did, worker=self.names(did.pid))

    def _settle(self, pool: ProcessPoolExecutor, ticket: Ticket, future: Future) -> None:
        """In the reactor's thread: what the future came to, for its ticket.

        Every job a broken pool held comes here: the pool is replaced only if it
        is still this one's, so one dead worker starts one new pool.
        """
        outcome: Any
        if future.cancelled():
            outcome = Failure(Stopped("the work was called off before it began"))
        elif (problem := future.exception()) is None:
            outcome = future.result()
        elif isinstance(problem, BrokenProcessPool):
            if pool is self.pool:
                self._broke(pool)
            outcome = Failure(WorkerDied("a worker process died while the work was under way"))
        else:
            outcome = Failure(problem)
        self._given_back(ticket, outcome)

    def _broke(self, pool: ProcessPoolExecutor) -> None:
        log.warn("A worker process died: the transforms its pool held are refused, and a new pool starts")
        self.pool = None
        self._end_pool(pool)
        self._start_again()

    def _start_again(self) -> None:
        restarting = self._in_background(self._started)
        self.restarting = restarting
        restarting.addCallbacks(self._restarted, self._not_restarted)

    def _in_background(self, start: Callable[[], ProcessPoolExecutor]) -> Deferred[ProcessPoolExecutor]:
        """``start`` in the reactor's thread pool: it waits up to WARM_WITHIN s for the workers."""
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), start)

    def _restarted(self, pool: ProcessPoolExecutor) -> None:
        self.restarting = None
        if not self.running:  # the server stopped meanwhile
            self._end_pool(pool)
            return
        self.pool = pool
        self._hand_out()

    def _not_restarted(self, failure: Failure) -> None:
        """One line, and the jobs that waited for this pool are refused; the next request tries again."""
        self.restarting = None
        if not self.running:
            return
        why = failure.getErrorMessage()
        log.warn("The new process pool did not start ({why}); the next request tries again", why=why)
        waiting = list(self.waiting)
        self.waiting.clear()
        for ticket in waiting:
            ticket.done.errback(Failure(WorkerDied(f"the process pool could not restart: {why}")))
