"""``--trace FILE``: a run as the Trace Event Format, for Perfetto and chrome://tracing.

The timeline draws what each task did; a trace shows the loop itself. It is the
JSON that tracing tools share (the "Trace Event Format"): a list of events, each
with a phase (``ph``), a process (``pid``) and a thread (``tid``), and a time in
microseconds (``ts``), here counted from the moment the first run began.

What a run puts in it:

- a track per thread, named ``main thread``, ``thread 1``, ``thread 2``... as the
  timeline names its lanes (the other threads numbered by the first task each did);
- a slice (``X``) per read a thread handled, with the task, the address and the bytes;
- a slice per wait in the loop, where the engine can see one (the engine hands it
  to :meth:`RunTrace.waited`: :mod:`poetrynow.clients.watching`);
- an async slice (``b``/``e``) per transform request, from the request to the
  answer: other tasks' reads go on meanwhile on the same thread, so it has a
  track of its own rather than a place on the thread's;
- instants (``i``) for a task's start, connection, end and failure, and a counter
  (``C``) of the bytes each task has so far.

Each run (each engine of the demo) is a process of its own in the trace, so the
runs lie one under another on one time axis.

Events are written as they come, not kept: a trace of a million reads costs
disk, not memory. A lock orders the writes, as a threaded engine's waits come
from its threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import IO, Any

from poetrynow import __version__
from poetrynow.events import (
    Connected,
    Event,
    Failed,
    Finished,
    Received,
    Restarted,
    Started,
    Transformed,
    TransformFailed,
)
from poetrynow.timeline.rows import MAIN

#: The unit a viewer shows times in; the file's own are always microseconds.
DISPLAY_UNIT = "ms"
MAIN_THREAD = "MainThread"


def micros(seconds: float) -> float:
    """Seconds as microseconds, to the nanosecond: enough, and a smaller file."""
    return round(seconds * 1e6, 3)


class TraceFile:
    """One trace file, open for a command's whole life; a :class:`RunTrace` per run in it.

    ``origin`` (on the runs' clock) is time zero; the first run to begin sets it
    unless it was given.
    """

    def __init__(self, stream: IO[str], origin: float | None = None):
        self.stream = stream
        self.origin = origin
        self.runs = 0
        self._lock = threading.Lock()
        self._comma = ""
        about = {"tool": "poetrynow", "version": __version__}
        stream.write(
            f'{{"displayTimeUnit": "{DISPLAY_UNIT}", "otherData": {json.dumps(about)}, "traceEvents": [\n'
        )

    @classmethod
    def create(cls, path: str) -> TraceFile:
        """Open ``path`` for writing (OSError, for the command's one line, if it cannot be)."""
        return cls(open(path, "w", encoding="utf-8"))  # closed by close()

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self.stream.write(self._comma + line)
            self._comma = ",\n"

    def run(self, name: str, clock: Callable[[], float]) -> RunTrace:
        """A new process in the trace, named ``name``, for one run on ``clock``."""
        self.runs += 1
        if self.origin is None:
            self.origin = clock()
        pid = self.runs
        self.add({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}})
        self.add({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
        return RunTrace(self, pid, self.origin, clock)

    def close(self) -> None:
        """End the JSON; a file closed mid-run is still valid, with what came before."""
        with self._lock:
            self.stream.write("\n]}\n")
        self.stream.close()


class RunTrace:
    """One run's process in a trace: its events, its loop's waits and its threads' names.

    Hand it every event (:meth:`event`) and, as the engine's ``watch``, every wait
    (:meth:`waited`); :meth:`close` names the threads once the run is over, when
    it is known which task each thread did first.
    """

    def __init__(self, trace: TraceFile, pid: int, origin: float, clock: Callable[[], float]):
        self.trace, self.pid, self.origin = trace, pid, origin
        #: The run's clock: what the engine's waits are timed with.
        self.clock = clock
        self._tids: dict[str, int] = {}
        self._first_task: dict[str, int] = {}
        self._bytes: dict[int, int] = {}
        self._lock = threading.Lock()

    def _tid(self, thread: str, task: int | None = None) -> int:
        thread = thread or threading.current_thread().name
        with self._lock:
            tid = self._tids.get(thread)
            if tid is None:
                tid = self._tids[thread] = 1 if thread == MAIN_THREAD else len(self._tids) + 2
            if task is not None and task < self._first_task.get(thread, task + 1):
                self._first_task[thread] = task
        return tid

    def _ts(self, t: float) -> float:
        return micros(t - self.origin)

    def _slice(self, name: str, cat: str, tid: int, began: float, ended: float, args: dict) -> None:
        ts, end = self._ts(began), self._ts(max(began, ended))
        self.trace.add(
            {"ph": "X", "name": name, "cat": cat, "pid": self.pid, "tid": tid, "ts": ts,
             "dur": round(end - ts, 3), "args": args}
        )  # fmt: skip

    def _instant(self, name: str, tid: int, t: float, args: dict) -> None:
        self.trace.add(
            {"ph": "i", "s": "t", "name": name, "cat": "task", "pid": self.pid, "tid": tid,
             "ts": self._ts(t), "args": args}
        )  # fmt: skip

    def waited(self, began: float, ended: float, call: str, ready: int | None = None) -> None:
        """The loop waited in ``call`` from ``began`` to ``ended`` (the run's clock), in this thread.

        ``ready``: how many sockets the wait returned, when the call says.
        """
        args = {} if ready is None else {"ready": ready}
        self._slice(call, "wait", self._tid(""), began, ended, args)

    def event(self, e: Event) -> None:
        """The trace's events for one of the run's events."""
        tid = self._tid(e.thread, e.task)
        where = {"task": e.task, "address": str(e.address)}
        if isinstance(e, Received):
            began = e.began if e.began is not None else e.t
            self._slice("read", "read", tid, began, e.t, {**where, "bytes": e.nbytes})
            total = self._bytes[e.task] = self._bytes.get(e.task, 0) + e.nbytes
            self.trace.add(
                {"ph": "C", "name": f"task {e.task} bytes", "pid": self.pid, "tid": tid, "ts": self._ts(e.t),
                 "args": {"bytes": total}}
            )  # fmt: skip
        elif isinstance(e, (Transformed, TransformFailed)):
            self._transform(e, tid, where)
        elif isinstance(e, Started):
            self._instant("start", tid, e.t, where)
        elif isinstance(e, Connected):
            self._instant("connected", tid, e.t, where)
        elif isinstance(e, Finished):
            self._instant("finished", tid, e.t, {**where, "bytes": len(e.poem)})
        elif isinstance(e, Failed):
            self._instant("failed", tid, e.t, {**where, "reason": e.reason, "received": e.received})
        elif isinstance(e, Restarted):
            self._instant("restarted", tid, e.t, {**where, "reason": e.reason, "attempt": e.attempt})

    def _transform(self, e: Transformed | TransformFailed, tid: int, where: dict) -> None:
        """A transform request as an async slice: it spans other work on its thread."""
        began = e.began if e.began is not None else e.t
        common = {
            "cat": "transform",
            "name": f"transform {e.transform}",
            "id": e.task,
            "pid": self.pid,
            "tid": tid,
        }
        self.trace.add({"ph": "b", "ts": self._ts(began), "args": where, **common})
        outcome = {"reason": e.reason} if isinstance(e, TransformFailed) else {"outcome": "transformed"}
        self.trace.add({"ph": "e", "ts": self._ts(max(began, e.t)), "args": outcome, **common})

    def close(self) -> None:
        """Name the run's threads: ``main thread``, then ``thread N`` in the order of their first tasks."""
        with self._lock:
            tids = dict(self._tids)
            first = dict(self._first_task)
        others = sorted((t for t in tids if t != MAIN_THREAD), key=lambda t: (first.get(t, 1 << 62), tids[t]))
        names = {MAIN_THREAD: MAIN} | {thread: f"thread {n}" for n, thread in enumerate(others, 1)}
        for order, (thread, name) in enumerate(sorted(names.items(), key=lambda kv: kv[0] != MAIN_THREAD)):
            if thread not in tids:
                continue
            tid = tids[thread]
            self.trace.add(
                {"ph": "M", "name": "thread_name", "pid": self.pid, "tid": tid, "args": {"name": name}}
            )
            self.trace.add(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": self.pid,
                    "tid": tid,
                    "args": {"sort_index": order},
                }
            )
