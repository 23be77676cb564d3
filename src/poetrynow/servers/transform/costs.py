"""What a transform request costs: Part 20's warning made into something to measure.

Part 20 opens by warning that blocking inside a Twisted program throws away what
the asynchronous model gives. Here each transform can be made to cost S seconds
of one of two kinds of work, so that where it runs (:mod:`poetrynow.servers.transform.workers`)
shows:

- ``wait``: a blocking wait, as a blocking database or HTTP call would be. It
  releases the GIL, so threads overlap it.
- ``cpu``: pure-Python work that holds the GIL. S seconds of *CPU time of the
  thread doing it*, not of wall time: four threads that each spun for S wall
  seconds would finish together, side by side, and hide that only one of them
  computes at a time.

This module runs in the server's worker processes too, so it imports nothing
but the standard library and the transforms.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from poetrynow.transforms import Transform, apply

#: The kinds of cost, and where the work may run (:mod:`poetrynow.servers.transform.workers`); the
#: first of each is the default.
KINDS = ("wait", "cpu")
PLACES = ("loop", "thread", "process")
#: Transforms a pool of threads or processes holds for each worker, unless told (``--queue``):
#: at work, or waiting for a worker (:mod:`poetrynow.servers.transform.pool`).
QUEUE_PER_WORKER = 4
#: Python iterations between two looks at the clock: about a tenth of a millisecond.
SPIN_ROUND = 2000


class Refused(Exception):
    """A request the server will not answer, for a reason its one log line gives: no traceback,
    for none of them is a bug."""


class Stopped(Refused):
    """The server stopped while the work was under way, or the work was called off: no answer."""


class Busy(Refused):
    """The workers hold as many transforms as they may (``--queue``): one more is refused, not queued."""


@dataclass(frozen=True)
class Cost:
    """S seconds of one kind of work per transform; 0 costs nothing."""

    seconds: float = 0.0
    kind: str = "wait"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"a cost is one of {', '.join(KINDS)}, not {self.kind!r}")


NO_COST = Cost()


def wait(seconds: float, sleep: Callable[[float], object] = time.sleep) -> None:
    """A blocking wait of ``seconds``: the thread sleeps, holding nothing."""
    sleep(seconds)


def spin(
    seconds: float,
    clock: Callable[[], float] = time.thread_time,
    stopped: Callable[[], bool] | None = None,
) -> int:
    """Python work until ``clock`` (the thread's CPU time) has advanced by ``seconds``.

    The clock is read every :data:`SPIN_ROUND` iterations: reading it costs a
    system call. Returns the rounds done. ``stopped`` is asked at each round too.
    """
    start = clock()
    rounds = 0
    value = 0
    while True:
        for step in range(SPIN_ROUND):
            value = (value * 31 + step) % 1000003
        rounds += 1
        if clock() - start >= seconds or (stopped is not None and stopped()):
            return rounds


def spend(cost: Cost, stop: threading.Event | None = None) -> None:
    """Spend ``cost``; with ``stop``, give up as soon as it is set (the job called off, the pool stopping)."""
    if cost.seconds <= 0:
        return
    if cost.kind == "wait":
        wait(cost.seconds, stop.wait if stop is not None else time.sleep)
    else:
        spin(cost.seconds, stopped=stop.is_set if stop is not None else None)
    if stop is not None and stop.is_set():
        raise Stopped("the server stopped before the work was done")


@dataclass(frozen=True)
class Job:
    """One transform request and its cost: what is handed to a worker (pickled, for a process)."""

    name: str
    transform: Transform
    poem: bytes
    cost: Cost = NO_COST


@dataclass(frozen=True)
class Done:
    """What a worker did: the transformed poem, and when, where, on ``time.monotonic``.

    CLOCK_MONOTONIC is the same clock in every process on Linux and macOS, so a
    client can put ``began`` and ``ended`` on its own time axis.
    """

    poem: bytes
    began: float
    ended: float
    pid: int
    thread: int  # threading.get_ident() of the worker
    worker: str = ""  # its name in the work log, given by the placement


def work(job: Job, stop: threading.Event | None = None) -> Done:
    """Spend the job's cost, then transform its poem: the whole of a request's work, timed.

    A job called off before its turn came (its client gone) costs nothing at all.
    """
    if stop is not None and stop.is_set():
        raise Stopped("the work was called off before it began")
    began = time.monotonic()
    spend(job.cost, stop)
    poem = apply(job.name, job.poem, {job.name: job.transform})
    return Done(poem, began, time.monotonic(), os.getpid(), threading.get_ident())


def worker_pid() -> int:
    """A trivial job: it warms a worker process up and says which it was."""
    return os.getpid()
