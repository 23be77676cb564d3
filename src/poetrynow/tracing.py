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
from poetrynow.stopping import signals_held
from poetrynow.timeline.rows import MAIN

#: The unit a viewer shows times in; the file's own are always microseconds.
DISPLAY_UNIT = "ms"
MAIN_THREAD = "MainThread"
#: Events written at most: a server trickling a poem a byte a read would otherwise make a
#: file of some 200 bytes per byte of poem. Past it, one instant says so and the rest are left out.
MOST_EVENTS = 2_000_000


def micros(seconds: float) -> float:
    """Seconds as microseconds, to the nanosecond: enough, and a smaller file."""
    return round(seconds * 1e6, 3)


class TraceFile:
    """One trace file, open for a command's whole life; a :class:`RunTrace` per run in it.

    ``origin`` (on the runs' clock) is time zero; the first run to begin sets it
    unless it was given. Writing never fails a run: a file that cannot be written
    (a full disk) stops the trace, and :attr:`error` says why, for the command's
    one line after the run.
    """

    def __init__(self, stream: IO[str], origin: float | None = None, most: int = MOST_EVENTS):
        self.stream = stream
        self.origin = origin
        self.most = most
        self.runs = 0
        self.written = 0
        #: True once the trace reached :attr:`most` events and left the rest out.
        self.truncated = False
        self.error: OSError | None = None
        self.closed = False
        self._owned = False
        self._lock = threading.Lock()
        self._comma = ""
        about = {"tool": "poetrynow", "version": __version__}
        self._write(
            f'{{"displayTimeUnit": "{DISPLAY_UNIT}", "otherData": {json.dumps(about)}, "traceEvents": [\n'
        )

    @classmethod
    def create(cls, path: str) -> TraceFile:
        """Open ``path`` for writing (OSError, for the command's one line, if it cannot be)."""
        trace = cls(open(path, "w", encoding="utf-8"))  # noqa: SIM115 (closed by close(), at the command's end)
        trace._owned = True
        return trace

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except (OSError, ValueError) as problem:  # ValueError: closed under us
            self.closed = True
            if self.error is None:
                self.error = problem if isinstance(problem, OSError) else OSError(str(problem))

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            if self.closed:
                return  # a thread's last wait, after the run was closed
            if record["ph"] != "M":  # names are few, and a track without its name is no use
                if self.truncated:
                    return
                if self.written >= self.most:
                    self.truncated = True  # one global instant says so, where it happened
                    line = json.dumps(
                        {"ph": "i", "s": "g", "name": f"trace truncated at {self.most:,} events",
                         "pid": record["pid"], "tid": record.get("tid", 1), "ts": record["ts"]}
                    )  # fmt: skip
            self._write(self._comma + line)
            self._comma = ",\n"  # after the first record, the same each time: a signal between is harmless
            self.written += 1

    def run(self, name: str, clock: Callable[[], float]) -> RunTrace:
        """A new process in the trace, named ``name``, for one run on ``clock``."""
        self.runs += 1
        if self.origin is None:
            self.origin = clock()
        pid = self.runs
        with signals_held():  # the file's first record may be this one: its comma must not be lost
            self.add({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
        return RunTrace(self, pid, self.origin, clock, name)

    def close(self) -> None:
        """End the JSON; a file closed mid-run is still valid, with what came before.

        Held from signals and from the other threads: a threads engine's workers,
        stopped by Ctrl-C, may still be telling of their last wait.
        """
        with signals_held(), self._lock:
            if not self.closed:
                self._write("\n]}\n")
                self.closed = True
            if self._owned:
                try:
                    self.stream.close()
                except OSError as problem:  # the last of the buffer would not go
                    self.error = self.error or problem


class RunTrace:
    """One run's process in a trace: its events, its loop's waits and its threads' names.

    Hand it every event (:meth:`event`) and, as the engine's ``watch``, every wait
    (:meth:`waited`); :meth:`close` names the threads once the run is over, when
    it is known which task each thread did first.
    """

    def __init__(self, trace: TraceFile, pid: int, origin: float, clock: Callable[[], float], name: str):
        self.trace, self.pid, self.origin = trace, pid, origin
        #: The process's name, written as the run closes: the caller may add to it meanwhile.
        self.name = name
        self.closed = False
        #: The run's clock: what the engine's waits are timed with.
        self.clock = clock
        self._tids: dict[str, int] = {}
        self._first_task: dict[str, int] = {}
        self._bytes: dict[int, int] = {}
        self._named: dict[str, str] = {}  # tracks named by their caller (:meth:`span`)
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
        if self.closed:
            return  # a worker thread's last wait, after the run (stopped by a signal) was closed
        args = {} if ready is None else {"ready": ready}
        self._slice(call, "wait", self._tid(""), began, ended, args)

    def span(self, track: str, name: str, cat: str, began: float, ended: float, args: dict) -> None:
        """A slice on a track of the caller's naming: another process's work, told after the fact
        (the transform server's ``--work-log``), on the run's time axis."""
        with self._lock:
            self._named[track] = track
        self._slice(name, cat, self._tid(track), began, ended, args)

    def event(self, e: Event) -> None:
        """The trace's events for one of the run's events."""
        tid = self._tid(e.thread, e.task)
        where = {"task": e.task, "address": str(e.address)}
        if isinstance(e, Received):
            began = e.began if e.began is not None else e.t
            self._slice("read", "read", tid, began, e.t, {**where, "bytes": e.nbytes})
            total = self._bytes[e.task] = self._bytes.get(e.task, 0) + e.nbytes
            self._counter(e.task, e.t, total)
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
            self._bytes[e.task] = 0  # the restarted process reads the poem from its start
            self._counter(e.task, e.t, 0)

    def _counter(self, task: int, t: float, total: int) -> None:
        """Task ``task``'s bytes so far (a viewer names the track ``task N bytes``)."""
        self.trace.add(
            {"ph": "C", "name": f"task {task}", "pid": self.pid, "ts": self._ts(t), "args": {"bytes": total}}
        )

    def _transform(self, e: Transformed | TransformFailed, tid: int, where: dict) -> None:
        """A transform request as an async slice: it spans other work on its thread."""
        began = e.began if e.began is not None else e.t
        # A local id: a plain one is global, and a viewer would put run 2's task 1 on run 1's track.
        common = {
            "cat": "transform",
            "name": f"transform {e.transform}",
            "id2": {"local": e.task},
            "pid": self.pid,
            "tid": tid,
        }
        self.trace.add({"ph": "b", "ts": self._ts(began), "args": where, **common})
        outcome = {"reason": e.reason} if isinstance(e, TransformFailed) else {"outcome": "transformed"}
        self.trace.add({"ph": "e", "ts": self._ts(max(began, e.t)), "args": outcome, **common})

    def close(self) -> None:
        """Name the run's process, and its threads: ``main thread``, then ``thread N`` in the order
        of their first tasks."""
        with self._lock:
            self.closed = True
            tids = dict(self._tids)
            first = dict(self._first_task)
            named = dict(self._named)
        others = sorted(
            (t for t in tids if t != MAIN_THREAD and t not in named),
            key=lambda t: (first.get(t, 1 << 62), tids[t]),
        )
        names = (
            {MAIN_THREAD: MAIN}
            | {thread: f"thread {n}" for n, thread in enumerate(others, 1)}
            | dict(sorted(named.items()))
        )
        with signals_held():  # a process or a track without its name would break the file's promise
            self.trace.add({"ph": "M", "name": "process_name", "pid": self.pid, "args": {"name": self.name}})
            for order, (thread, name) in enumerate(
                sorted(names.items(), key=lambda kv: kv[0] != MAIN_THREAD)
            ):
                if thread not in tids:
                    continue
                tid = tids[thread]
                for what, value in (
                    ("thread_name", {"name": name}),
                    ("thread_sort_index", {"sort_index": order}),
                ):
                    self.trace.add({"ph": "M", "name": what, "pid": self.pid, "tid": tid, "args": value})
