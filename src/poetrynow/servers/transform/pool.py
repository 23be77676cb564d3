"""The queue in front of a pool of workers (threads or processes): bounded, and cancellable.

A pool holds at most ``queue`` jobs (``--queue``): ``workers`` of them at work,
the rest waiting here, in order, for a worker to be free. One more is refused at
once (:class:`~poetrynow.servers.transform.costs.Busy`) rather than queued: each job holds
a poem of up to ``--max-length`` bytes, and a client can send requests faster than
any worker does S seconds of work. The pools' own queues (Twisted's
``ThreadPool``, ``ProcessPoolExecutor``'s pending work) are never used: they have
no limit, and a job in them cannot be taken back.

A job's Deferred can be cancelled (its client has gone, or its time is up). A job
still waiting leaves the queue, poem and all, and costs nothing; one at work is
called off as its kind of worker allows, and holds its worker until the worker
gives it back. When the pool stops, every job it holds fails at once with
:class:`~poetrynow.servers.transform.costs.Stopped`: none waits for a worker that will not
come, and none is left unfired.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from poetrynow.servers.transform.costs import QUEUE_PER_WORKER, Busy, Done, Job, Refused, Stopped


def usable_cores() -> int:
    """The cores this process may run on, which may be fewer than the machine has.

    ``os.cpu_count()`` counts the machine's. A container's cpuset or ``taskset``
    leaves a process fewer: its CPU affinity, which Python 3.13's
    ``os.process_cpu_count`` reads (and ``-X cpu_count`` overrides).
    """
    counted = getattr(os, "process_cpu_count", None)
    if counted is not None:
        return counted() or 1
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0)) or 1
    return os.cpu_count() or 1


class FirstSeen:
    """Names workers ``thread 1``, ``thread 2``... in the order each is first seen."""

    def __init__(self, word: str):
        self.word = word
        self.seen: dict[int, int] = {}

    def __call__(self, key: int) -> str:
        return f"{self.word} {self.seen.setdefault(key, len(self.seen) + 1)}"


class Ticket:
    """One job in a pool's hands: its Deferred, and what calls the work off once begun."""

    __slots__ = ("done", "future", "job", "stop")

    def __init__(self, job: Job):
        self.job = job
        self.done: Deferred[Done] = Deferred()
        self.stop = threading.Event()  # a thread's: set when the job is called off
        self.future: Future | None = None  # a process's: the pool's future, once handed over


class Pooled:
    """What the thread and process pools share: the bounded queue, handing out, cancelling, stopping.

    A subclass starts and ends its pool (``_start``, ``_end``), hands it a job
    (``_begin``: its worker calls :meth:`_given_back` in the reactor's thread when
    done with it), calls a job off (``_call_off``) and names the worker that did
    it (``_named``).
    """

    place = ""

    def __init__(self, reactor: Any, workers: int, queue: int | None = None):
        self.reactor = reactor
        self.workers = workers
        self.queue = queue or QUEUE_PER_WORKER * workers
        self.waiting: deque[Ticket] = deque()
        self.at_work: set[Ticket] = set()
        self.running = False

    @property
    def held(self) -> int:
        return len(self.waiting) + len(self.at_work)

    def start(self) -> None:
        self._start()
        self.running = True

    def stop(self) -> None:
        """End the workers; every job held fails with Stopped, now: a one-line refusal each."""
        self.running = False
        held = [*self.waiting, *self.at_work]
        self.waiting.clear()
        self.at_work.clear()
        try:
            for ticket in held:
                self._call_off(ticket)
            self._end()
        finally:
            for ticket in held:
                if not ticket.done.called:
                    ticket.done.errback(Failure(Stopped("the server stopped before the work was done")))

    def run(self, job: Job) -> Deferred[Done]:
        why = self._refusal()
        if why is None and self.held >= self.queue:
            why = Busy(f"busy: {self.held} transform{'s' if self.held != 1 else ''} waiting")
        if why is not None:
            return fail(why)
        ticket = Ticket(job)
        ticket.done = Deferred(lambda _: self._cancel(ticket))
        self.waiting.append(ticket)
        self._hand_out()
        return ticket.done

    def _refusal(self) -> Refused | None:
        """Why a new job is refused whatever the queue holds; None if it is not."""
        return None if self.running else Stopped("the server has stopped")

    def _can_hand_out(self) -> bool:
        return self.running

    def _hand_out(self) -> None:
        """Waiting jobs, in order, to the workers that are free."""
        while self.waiting and len(self.at_work) < self.workers and self._can_hand_out():
            ticket = self.waiting.popleft()
            self.at_work.add(ticket)
            self._begin(ticket)

    def _cancel(self, ticket: Ticket) -> None:
        """The Deferred's canceller: a waiting job leaves the queue; a job at work is called off."""
        if ticket in self.at_work:
            self._call_off(ticket)
        elif ticket in self.waiting:
            self.waiting.remove(ticket)

    def _given_back(self, ticket: Ticket, outcome: Any) -> None:
        """In the reactor's thread: a worker is done with ``ticket``, whose outcome is a Done or a Failure.

        Its Deferred fires, unless it was cancelled or the pool stopped meanwhile,
        and the worker takes the next job waiting.
        """
        if ticket not in self.at_work:  # the pool stopped: its Deferred has had its Stopped
            return
        self.at_work.discard(ticket)
        if not ticket.done.called:
            if isinstance(outcome, Failure):
                ticket.done.errback(outcome)
            else:
                ticket.done.callback(self._named(outcome))
        self._hand_out()

    def _start(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def _begin(self, ticket: Ticket) -> None:
        raise NotImplementedError

    def _call_off(self, ticket: Ticket) -> None:
        raise NotImplementedError

    def _named(self, did: Done) -> Done:
        raise NotImplementedError
