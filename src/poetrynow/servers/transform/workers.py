"""Where a transform's work runs: in the reactor's thread, in a thread pool, or in processes.

Part 20's warning, and its two ways out:

- :class:`InLoop`: in the reactor's thread. While it works, no other client is
  read, written or accepted: a blocking wait there serialises every client.
- :class:`InThreads`: a Twisted thread pool. Waits overlap; Python work does not,
  for only the thread holding the GIL computes.
- :class:`~poetrynow.servers.transform.processes.InProcesses`: a process pool. Each worker
  has its own interpreter and GIL, so CPU work spreads over the cores.

Each hands back a Deferred that fires in the reactor's thread with what the
worker did (:class:`~poetrynow.servers.transform.costs.Done`), its worker named as the work
log names it: ``main thread``, ``thread N``, ``process N``, numbered in the order
each is first seen. The pools hold a bounded queue of jobs that can be cancelled
(:mod:`poetrynow.servers.transform.pool`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.threadpool import ThreadPool

from poetrynow.servers.transform.costs import PLACES, Done, Job, work
from poetrynow.servers.transform.pool import FirstSeen, Pooled, Ticket
from poetrynow.servers.transform.processes import InProcesses

__all__ = ["MAIN", "THREADS", "InLoop", "InProcesses", "InThreads", "placement"]

#: Threads in a pool, unless told: as many as the reactor's own pool has.
THREADS = 10
MAIN = "main thread"


class InLoop:
    """The work in the reactor's own thread: every other client waits while it works."""

    place = "loop"
    queue = 1  # it does one job at a time, and holds none waiting: the other requests wait unread

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, job: Job) -> Deferred[Done]:
        return maybeDeferred(work, job).addCallback(replace, worker=MAIN)


class InThreads(Pooled):
    """The work in a Twisted thread pool of its own, started and stopped with the service.

    A thread cannot be stopped from outside, so each job's cost is spent against
    an event of its own, set when the job is called off (its client gone, its time
    up) or the pool stops: a wait or a spin under way ends at once, rather than
    hold a worker, or the server's exit, for its S seconds.
    """

    place = "thread"

    def __init__(self, reactor: Any, workers: int = THREADS, queue: int | None = None):
        super().__init__(reactor, workers, queue)
        self.names = FirstSeen("thread")
        self.pool: ThreadPool | None = None

    def _start(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=self.workers, name="transform")
        self.pool.start()

    def _end(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()  # joins its threads, whose jobs' events are set: none takes long

    def _begin(self, ticket: Ticket) -> None:
        def given_back(_succeeded: bool, outcome: Any) -> None:  # in the pool's thread
            self.reactor.callFromThread(self._given_back, ticket, outcome)

        assert self.pool is not None  # handed out only while running
        self.pool.callInThreadWithCallback(given_back, work, ticket.job, ticket.stop)

    def _call_off(self, ticket: Ticket) -> None:
        ticket.stop.set()

    def _named(self, did: Done) -> Done:
        return replace(did, worker=self.names(did.thread))


def placement(place: str, reactor: Any = None, workers: int | None = None, queue: int | None = None):
    """The workers for ``place`` (one of :data:`PLACES`): ``workers`` threads or processes,
    holding at most ``queue`` jobs."""
    if reactor is None:
        from twisted.internet import reactor
    if place == "loop":
        return InLoop()
    if place == "thread":
        return InThreads(reactor, workers or THREADS, queue)
    if place == "process":
        return InProcesses(reactor, workers, queue)
    raise ValueError(f"the work runs in one of {', '.join(PLACES)}, not {place!r}")
