"""``--trace FILE``: each engine's run in the Trace Event Format, valid and telling.

The format's rules are in tests/trace_format.py, checked here first against traces
made to break them. Then each engine runs in this process against the project's own
servers on a reactor in a thread (tests.support.ServersInAThread), and the commands
run as subprocesses, as a user would run them.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import types
from typing import ClassVar
from unittest import skipUnless

from poetrynow.address import Address
from poetrynow.clients import ENGINES, EngineOptions
from poetrynow.clients.watching import ITERATION, TimedPoller, watch_reactor
from poetrynow.events import (
    Connected,
    Failed,
    Finished,
    Received,
    Restarted,
    Started,
    Transformed,
    TransformFailed,
)
from poetrynow.session import fetch
from poetrynow.tracing import TraceFile
from tests.support import DEADLINE, Child, ServersInAThread, StallingServer, command, run, temp_dir
from tests.time_limit import SynchronousTestCase
from tests.trace_format import TraceProblem, check_event, check_trace, slices, thread_names

HERE = Address("127.0.0.1", 1)


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def written(trace: TraceFile) -> dict:
    """What the trace wrote, closed as a command closes it (a stream it did not open stays open)."""
    trace.close()
    return json.loads(trace.stream.getvalue())


class FormatTests(SynchronousTestCase):
    """What the writer makes of each kind of event, on a fake clock."""

    def test_every_kind_of_event_follows_the_format(self):
        clock = FakeClock(100.0)
        trace = TraceFile(io.StringIO())
        run_trace = trace.run("get-poetry --engine select", clock)
        run_trace.event(Started(task=1, address=HERE, t=100.0, thread="MainThread"))
        run_trace.waited(100.0, 100.25, "epoll", 1)
        run_trace.event(Connected(task=1, address=HERE, t=100.25, thread="MainThread"))
        run_trace.event(Received(task=1, address=HERE, t=100.5, began=100.4, nbytes=10, thread="MainThread"))
        run_trace.event(Received(task=1, address=HERE, t=100.75, began=100.75, nbytes=5, thread="MainThread"))
        run_trace.event(
            Transformed(task=1, address=HERE, t=101.0, began=100.8, transform="shout", thread="MainThread")
        )
        run_trace.event(Finished(task=1, address=HERE, t=101.0, poem=b"x" * 15, thread="MainThread"))
        run_trace.event(Started(task=2, address=HERE, t=100.0, thread="worker"))
        run_trace.event(
            TransformFailed(task=2, address=HERE, t=101.0, transform="shout", reason="no", thread="worker")
        )
        run_trace.event(Failed(task=2, address=HERE, t=101.5, reason="refused", thread="worker"))
        run_trace.close()
        document = written(trace)
        events = check_trace(document)
        self.assertEqual(document["displayTimeUnit"], "ms")
        read = slices(events, cat="read")[0]
        # Microseconds from the run's start: began 0.4 s in, 0.1 s of work.
        self.assertEqual((read["ts"], read["dur"]), (400000.0, 100000.0))
        self.assertEqual(read["args"], {"task": 1, "address": "127.0.0.1:1", "bytes": 10})
        counters = [e["args"]["bytes"] for e in events if e["ph"] == "C"]
        self.assertEqual(counters, [10, 15])  # bytes so far, not per read
        wait = slices(events, cat="wait")[0]
        self.assertEqual((wait["name"], wait["args"]), ("epoll", {"ready": 1}))
        self.assertEqual(
            [(e["ph"], e["ts"]) for e in events if e.get("cat") == "transform" and e["id2"] == {"local": 1}],
            [("b", 800000.0), ("e", 1000000.0)],
        )
        self.assertEqual(sorted(thread_names(events, 1).values()), ["main thread", "thread 1"])
        names = [e["name"] for e in events if e["ph"] == "i"]
        self.assertEqual(names, ["start", "connected", "finished", "start", "failed"])

    def test_a_restart_sets_the_tasks_counter_back_to_nothing(self):
        trace = TraceFile(io.StringIO())
        run_trace = trace.run("actors", FakeClock())
        run_trace.event(Received(task=1, address=HERE, t=100.0, nbytes=7, thread="MainThread"))
        run_trace.event(
            Restarted(task=1, address=HERE, t=100.1, reason="crash", attempt=1, limit=2, thread="MainThread")
        )
        run_trace.event(Received(task=1, address=HERE, t=100.2, nbytes=3, thread="MainThread"))
        run_trace.close()
        events = check_trace(written(trace))
        self.assertEqual([e["args"]["bytes"] for e in events if e["ph"] == "C"], [7, 0, 3])
        self.assertEqual({e["name"] for e in events if e["ph"] == "C"}, {"task 1"})

    def test_past_its_limit_a_trace_says_so_once_and_stays_valid(self):
        trace = TraceFile(io.StringIO(), most=5)
        run_trace = trace.run("select", FakeClock())
        for n in range(20):
            run_trace.event(Received(task=1, address=HERE, t=100.0 + n, nbytes=1, thread="MainThread"))
        run_trace.close()
        events = check_trace(written(trace))
        self.assertTrue(trace.truncated)
        notices = [e for e in events if e["ph"] == "i" and e["name"].startswith("trace truncated")]
        self.assertEqual(len(notices), 1)
        self.assertEqual(thread_names(events, 1), {1: "main thread"})  # the names are written past the limit

    def test_a_trace_that_cannot_be_written_stops_and_says_why(self):
        class Full(io.StringIO):
            def write(self, text):
                if self.tell() > 200:
                    raise OSError(28, "No space left on device")
                return super().write(text)

        trace = TraceFile(Full())
        run_trace = trace.run("select", FakeClock())
        for n in range(50):  # the run goes on: a trace never fails a poem
            run_trace.event(Received(task=1, address=HERE, t=100.0 + n, nbytes=1, thread="MainThread"))
        run_trace.close()
        trace.close()
        self.assertEqual(trace.error.errno, 28)

    def test_a_thread_telling_of_a_wait_after_the_close_is_ignored(self):
        trace = TraceFile(io.StringIO())
        run_trace = trace.run("threads", FakeClock())
        run_trace.close()
        document = written(trace)
        run_trace.waited(100.0, 101.0, "recv")  # a worker still in recv when Ctrl-C came
        self.assertEqual(json.loads(trace.stream.getvalue()), document)

    def test_each_run_is_a_process_on_one_time_axis(self):
        clock = FakeClock(50.0)
        trace = TraceFile(io.StringIO())
        first = trace.run("blocking", clock)
        first.event(Started(task=1, address=HERE, t=50.0, thread="MainThread"))
        first.close()
        clock.now = 60.0
        second = trace.run("select", clock)
        second.event(Started(task=1, address=HERE, t=60.0, thread="MainThread"))
        second.close()
        events = check_trace(written(trace))
        processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
        self.assertEqual(processes, {1: "blocking", 2: "select"})
        starts = {e["pid"]: e["ts"] for e in events if e["ph"] == "i"}
        self.assertEqual(starts, {1: 0.0, 2: 10_000_000.0})  # the second run 10 s after the first began

    def test_the_threads_are_numbered_in_the_order_of_their_first_tasks(self):
        trace = TraceFile(io.StringIO())
        run_trace = trace.run("threads", FakeClock())
        for task, thread in ((3, "poem-3"), (1, "poem-1"), (2, "poem-2")):  # as a queue may hand them over
            run_trace.event(Started(task=task, address=HERE, t=100.0, thread=thread))
        run_trace.close()
        events = check_trace(written(trace))
        tids = {e["args"]["task"]: e["tid"] for e in events if e["ph"] == "i"}
        names = thread_names(events, 1)
        self.assertEqual([names[tids[task]] for task in (1, 2, 3)], ["thread 1", "thread 2", "thread 3"])


class RulesTests(SynchronousTestCase):
    """The checker itself: each rule of the format catches what breaks it."""

    GOOD: ClassVar[dict] = {"ph": "X", "name": "read", "pid": 1, "tid": 1, "ts": 0, "dur": 1}

    def test_each_phase_needs_its_fields(self):
        check_event(self.GOOD)
        broken = [
            {**self.GOOD, "ph": "Q"},
            {k: v for k, v in self.GOOD.items() if k != "dur"},
            {k: v for k, v in self.GOOD.items() if k != "tid"},
            {k: v for k, v in self.GOOD.items() if k != "ts"},
            {**self.GOOD, "ts": -1},
            {"ph": "i", "name": "x", "pid": 1, "tid": 1, "ts": 0},  # no scope
            {"ph": "C", "name": "x", "pid": 1, "ts": 0, "args": {"bytes": "many"}},
            {"ph": "b", "name": "x", "pid": 1, "tid": 1, "ts": 0, "cat": "transform"},  # no id
            {"ph": "M", "name": "colour", "pid": 1, "args": {"name": "x"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "args": {"name": "x"}},  # no tid
        ]
        for event in broken:
            with self.subTest(event=event), self.assertRaises(TraceProblem):
                check_event(event)

    def test_the_document_needs_its_list_and_unit(self):
        with self.assertRaises(TraceProblem):
            check_trace({"traceEvents": []})
        with self.assertRaises(TraceProblem):
            check_trace({"displayTimeUnit": "ms"})

    def test_unnamed_threads_open_async_slices_and_crossing_slices_are_caught(self):
        names = [
            {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "p"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "main thread"}},
        ]
        inside = [
            {**self.GOOD, "ts": 0, "dur": 10},
            {**self.GOOD, "ts": 2, "dur": 3},
            {**self.GOOD, "ts": 10, "dur": 1},
        ]
        check_trace({"displayTimeUnit": "ms", "traceEvents": names + inside})
        crossing = [{**self.GOOD, "ts": 0, "dur": 10}, {**self.GOOD, "ts": 5, "dur": 10}]
        unnamed = [{**self.GOOD, "tid": 2}]
        unended = [{"ph": "b", "name": "t", "cat": "transform", "id": 1, "pid": 1, "tid": 1, "ts": 0}]
        for events in (crossing, unnamed, unended):
            with self.subTest(events=events), self.assertRaises(TraceProblem):
                check_trace({"displayTimeUnit": "ms", "traceEvents": names + events})


class ReactorWatchTests(SynchronousTestCase):
    """The Twisted reactor's waits: its private poller when it is there, else each iteration."""

    def setUp(self):
        self.waits: list[tuple] = []
        self.watch = types.SimpleNamespace(clock=FakeClock(), waited=lambda *wait: self.waits.append(wait))

    def test_the_poller_is_timed_and_given_back(self):
        poller = select.poll()
        reactor = types.SimpleNamespace(_poller=poller)
        undo = watch_reactor(reactor, self.watch)
        self.assertIsInstance(reactor._poller, TimedPoller)
        self.assertEqual(reactor._poller.poll(0), [])
        self.assertEqual(reactor._poller.register, poller.register)  # the rest is the poller's own
        self.assertEqual(self.waits, [(100.0, 100.0, "poll", 0)])
        undo()
        self.assertIs(reactor._poller, poller)

    def test_a_poller_of_another_kind_is_left_alone(self):
        iterations: list = []
        reactor = types.SimpleNamespace(
            _poller=types.SimpleNamespace(poll=lambda *a: ()), doIteration=iterations.append
        )
        undo = watch_reactor(reactor, self.watch)
        self.assertNotIsInstance(reactor._poller, TimedPoller)
        reactor.doIteration(0.1)
        self.assertEqual((iterations, self.waits), ([0.1], [(100.0, 100.0, ITERATION)]))
        undo()

    def test_without_the_private_poller_each_iteration_is_timed(self):
        iterations: list = []

        class Reactor:  # a reactor of a release with no ``_poller``
            def doIteration(self, delay):
                iterations.append(delay)

        reactor = Reactor()
        undo = watch_reactor(reactor, self.watch)
        reactor.doIteration(0.5)
        self.assertEqual(iterations, [0.5])
        self.assertEqual(self.waits, [(100.0, 100.0, ITERATION)])
        undo()
        self.assertNotIn("doIteration", vars(reactor))

    def test_a_real_reactor_has_the_poller_the_check_looks_for(self):
        from poetrynow.clients.reactors import close_reactor
        from poetrynow.clients.twisted_engine import new_reactor

        reactor = new_reactor()
        try:
            undo = watch_reactor(reactor, self.watch)
            self.assertIsInstance(reactor._poller, TimedPoller)
            undo()
        finally:
            close_reactor(reactor)


class EveryEngineTests(SynchronousTestCase):
    """Each engine's trace from a real run: valid, its reads, its waits, its threads."""

    #: The engines whose loop's waits the trace shows, and the calls they wait in.
    SELECTORS: ClassVar[set[str]] = {"epoll", "poll", "kqueue", "select"}
    WAITS: ClassVar[dict[str, set[str]]] = {
        "select": SELECTORS,
        "twisted": {"epoll", "poll", ITERATION},
        "asyncio": SELECTORS,
        "threads": {"recv"},
        "blocking": {"recv"},
        "actors": SELECTORS,
        "lazy": SELECTORS,
    }

    def setUp(self):
        self.servers = ServersInAThread(self)
        ports = [self.servers.slow("kettle", 200, 0.002) for _ in range(3)]
        self.addresses = [Address("127.0.0.1", port) for port in ports]

    def traced(self, engine: str, **settings) -> tuple[list[dict], object]:
        trace = TraceFile(io.StringIO())
        options = EngineOptions(timeout=DEADLINE, **settings)
        quiet = {"out": io.StringIO(), "err": io.StringIO(), "print_poems": False}
        summary = fetch(engine, self.addresses, options, trace=trace, **quiet)
        return check_trace(written(trace)), summary

    def test_every_engine(self):
        for engine in ENGINES:
            with self.subTest(engine=engine):
                events, summary = self.traced(engine)
                self.assertEqual(len(summary.finished), 3)
                reads = slices(events, cat="read")
                self.assertEqual(
                    sum(r["args"]["bytes"] for r in reads), sum(len(f.poem) for f in summary.finished)
                )
                self.assertEqual({r["args"]["task"] for r in reads}, {1, 2, 3})
                self.assertTrue(all(r["args"]["address"].startswith("127.0.0.1:") for r in reads))
                finished = [e for e in events if e["ph"] == "i" and e["name"] == "finished"]
                self.assertEqual(len(finished), 3)
                if engine in self.WAITS:
                    waits = slices(events, cat="wait")
                    self.assertTrue(waits, f"{engine} shows no wait")
                    self.assertLessEqual({w["name"] for w in waits}, self.WAITS[engine])

    def test_the_threads_engine_has_a_track_per_thread(self):
        events, _ = self.traced("threads")
        names = thread_names(events, 1)
        self.assertEqual(sorted(names.values()), ["thread 1", "thread 2", "thread 3"])
        for tid, name in names.items():
            on_it = {r["args"]["task"] for r in slices(events, cat="read") if r["tid"] == tid}
            self.assertEqual(on_it, {int(name.split()[1])})  # thread N read task N's poem, and only it
            self.assertTrue([w for w in slices(events, cat="wait") if w["tid"] == tid])

    def test_a_transform_request_is_an_async_slice(self):
        xform = Address("127.0.0.1", self.servers.transforms())
        for engine in ("twisted", "asyncio", "threads"):
            with self.subTest(engine=engine):
                events, _ = self.traced(engine, xform=xform, transform="shout")
                begun = sorted(
                    e["id2"]["local"] for e in events if e["ph"] == "b" and e["cat"] == "transform"
                )
                self.assertEqual(begun, [1, 2, 3])


class CommandTests(SynchronousTestCase):
    """``get-poetry --trace`` and ``poetrynow demo --trace`` as a user runs them."""

    def setUp(self):
        self.servers = ServersInAThread(self)
        self.dir = temp_dir(self)

    def test_get_poetry_writes_a_valid_trace(self):
        port = self.servers.slow("kettle", 300, 0.002)
        path = os.path.join(self.dir, "run.json")
        done = run("get-poetry", "--engine", "select", "--trace", path, str(port), str(port))
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(path) as trace:
            events = check_trace(json.load(trace))
        self.assertTrue(slices(events, cat="wait"))

    def test_a_trace_that_cannot_be_written_is_one_line(self):
        port = self.servers.slow("kettle", 300, 0.002)
        path = os.path.join(self.dir, "no", "such", "dir.json")
        for argv in (("get-poetry", "--trace", path, str(port)), ("poetrynow", "demo", "--trace", path)):
            with self.subTest(command=argv[0]):
                done = run(*argv)
                self.assertEqual(done.returncode, 2)
                self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
                self.assertIn("cannot write the trace", done.stderr)

    def test_ctrl_c_leaves_a_valid_trace_with_the_threads_still_waiting(self):
        server = StallingServer(b"a first line\n")
        self.addCleanup(server.close)
        path = os.path.join(self.dir, "stopped.json")
        argv = command("get-poetry") + ["--engine", "threads", "--trace", path] + [str(server.port)] * 3
        child = Child(argv)
        self.addCleanup(child.stop)
        begun: set[str] = set()

        def every_task_read(line: str) -> bool:
            if " got " in line:
                begun.add(line.split(":")[0])
            return len(begun) == 3

        child.out.until(every_task_read)  # every poem begun: the three threads wait in recv
        status = child.stop(signal.SIGINT)
        self.assertEqual(status, 130)
        with open(path) as trace:
            events = check_trace(json.load(trace))
        self.assertEqual(sorted(thread_names(events, 1).values()), ["thread 1", "thread 2", "thread 3"])

    @skipUnless(os.path.exists("/dev/full"), "needs /dev/full (Linux)")
    def test_a_full_disk_is_one_line_and_exit_one_but_the_poems_arrive(self):
        port = self.servers.slow("kettle", 300, 0.002)
        done = run("get-poetry", "--engine", "select", "--trace", "/dev/full", str(port))
        self.assertEqual(done.returncode, 1)
        self.assertIn("Got 1 poem", done.stdout)  # the run itself went on
        self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
        self.assertIn("the trace in /dev/full is incomplete", done.stderr)

    def test_the_demo_puts_each_engine_in_a_process_of_its_own(self):
        path = os.path.join(self.dir, "demo.json")
        done = run("poetrynow", "demo", "--engines", "blocking,select", "--delay", "0.005", "--no-timeline",
                   "--trace", path)  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"The trace is in {path}", done.stdout)
        with open(path) as trace:
            events = check_trace(json.load(trace))
        processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
        self.assertEqual(
            [name.split(":")[0] for _, name in sorted(processes.items())], ["blocking", "select"]
        )
        # One time axis: select ran after blocking had finished.
        last_blocking = max(e["ts"] for e in events if e["pid"] == 1 and e["ph"] != "M")
        first_select = min(e["ts"] for e in events if e["pid"] == 2 and e["ph"] != "M")
        self.assertGreater(first_select, last_blocking)
