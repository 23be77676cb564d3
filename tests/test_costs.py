"""What a transform costs (Part 20), its work log and its options: fake clocks, no waiting."""

from __future__ import annotations

import inspect
import json
import os
import threading
import time
from dataclasses import replace
from unittest import SkipTest, mock

from twisted.logger import LogLevel, capturedLogs

from poetrynow import validate
from poetrynow.plugin_options import cost_kind, cost_place
from poetrynow.servers.transform.costs import Cost, Job, Stopped, spend, spin, wait, work
from poetrynow.servers.transform.pool import FirstSeen, usable_cores
from poetrynow.servers.transform.worklog import WorkLog, WorkLogError, read_work_log
from poetrynow.transforms import TransformError, cummingsify, explode
from tests.support import temp_dir
from tests.time_limit import SynchronousTestCase


class FakeClock:
    """A CPU-time clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float):
        self.now, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.reads += 1
        now = self.now
        self.now += self.step
        return now


class SpinTests(SynchronousTestCase):
    def test_it_works_until_the_clock_has_advanced_by_the_cost(self):
        clock = FakeClock(0.1)
        self.assertEqual(spin(0.35, clock), 4)  # read at 0 to start, then 0.1, 0.2, 0.3, 0.4
        self.assertEqual(clock.reads, 5)

    def test_the_clock_is_the_thread_s_cpu_time(self):
        # Four GIL-bound threads that each spun S wall seconds would end together, and hide the GIL.
        self.assertIs(inspect.signature(spin).parameters["clock"].default, time.thread_time)

    def test_it_ends_early_when_told_to_stop(self):
        asked = []
        self.assertEqual(spin(100, FakeClock(0.1), stopped=lambda: asked.append(1) or len(asked) == 2), 2)


class WaitTests(SynchronousTestCase):
    def test_a_wait_is_one_blocking_sleep(self):
        slept: list[float] = []
        wait(0.25, sleep=slept.append)
        self.assertEqual(slept, [0.25])

    def test_no_cost_spends_nothing(self):
        stop = threading.Event()
        stop.set()  # were it spent, this would raise Stopped
        spend(Cost(0, "wait"), stop)
        spend(Cost(0, "cpu"), stop)

    def test_a_job_called_off_before_its_turn_costs_nothing(self):
        stop = threading.Event()
        stop.set()
        with self.assertRaises(Stopped):
            work(Job("explode", explode, b"poem", Cost(3600, "cpu")), stop)  # neither spun nor transformed

    def test_a_stopping_pool_ends_a_long_cost_at_once(self):
        stop = threading.Event()
        stop.set()
        for kind in ("wait", "cpu"):
            with self.subTest(kind), self.assertRaises(Stopped):
                spend(Cost(3600, kind), stop)

    def test_only_the_two_kinds(self):
        self.assertRaises(ValueError, Cost, 1.0, "nap")


class WorkTests(SynchronousTestCase):
    def test_the_work_is_timed_and_says_where_it_ran(self):
        done = work(Job("cummingsify", cummingsify, b"ABC", Cost(0.0)))
        self.assertEqual(done.poem, b"abc")
        self.assertLessEqual(done.began, done.ended)
        self.assertEqual((done.pid, done.thread), (os.getpid(), threading.get_ident()))

    def test_a_transform_that_fails_is_a_transform_error(self):
        with self.assertRaises(TransformError):
            work(Job("explode", explode, b"poem"))

    def test_the_cores_this_process_may_use(self):
        # Python 3.13 says; before it, the CPU affinity (a container's cpuset, taskset); else the machine's.
        with mock.patch.object(os, "process_cpu_count", lambda: 3, create=True):
            self.assertEqual(usable_cores(), 3)
        with (
            mock.patch.object(os, "process_cpu_count", None, create=True),
            mock.patch.object(os, "sched_getaffinity", lambda pid: {0, 5}, create=True),
            mock.patch.object(os, "cpu_count", lambda: 64),
        ):
            self.assertEqual(usable_cores(), 2)
        with (
            mock.patch.object(os, "process_cpu_count", None, create=True),
            mock.patch.object(os, "sched_getaffinity", None, create=True),
            mock.patch.object(os, "cpu_count", lambda: None),
        ):
            self.assertEqual(usable_cores(), 1)

    def test_workers_are_numbered_in_the_order_first_seen(self):
        name = FirstSeen("thread")
        self.assertEqual(
            [name(k) for k in (70, 30, 70, 90)], ["thread 1", "thread 2", "thread 1", "thread 3"]
        )


class WorkLogTests(SynchronousTestCase):
    def test_a_json_line_per_transform_flushed_as_written(self):
        path = os.path.join(temp_dir(self), "work.jsonl")
        log = WorkLog(path)
        log.open()
        self.addCleanup(log.close)
        done = work(Job("cummingsify", cummingsify, b"ABC"))
        log.write(replace(done, worker="thread 1"), "cummingsify", 3)
        with open(path) as written:  # before close: the line is out already
            line = json.loads(written.read())
        self.assertEqual(
            line,
            {"began": done.began, "ended": done.ended, "worker": "thread 1", "pid": os.getpid(),
             "transform": "cummingsify", "bytes": 3},
        )  # fmt: skip

    def test_a_full_disk_costs_the_log_one_line_and_nothing_more(self):
        if not os.path.exists("/dev/full"):
            raise SkipTest("no /dev/full here")
        log = WorkLog("/dev/full")  # opens; every write fails with ENOSPC
        log.open()
        done = replace(work(Job("cummingsify", cummingsify, b"ABC")), worker="thread 1")
        with capturedLogs() as logs:
            log.write(done, "cummingsify", 3)
            log.write(done, "cummingsify", 3)  # off: not tried again
            log.close()
        [event] = logs
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertNotIn("log_failure", event)
        self.assertEqual((event["path"], event["why"]), ("/dev/full", "No space left on device"))
        self.assertIsNone(log.file)

    def test_a_log_that_cannot_be_closed_is_one_line(self):
        class Failing:
            def close(self):
                raise OSError(5, "Input/output error")

        log = WorkLog("work.jsonl")
        log.file = Failing()  # type: ignore[assignment]
        with capturedLogs() as logs:
            log.close()
        self.assertEqual([e["why"] for e in logs], ["Input/output error"])

    def test_a_line_cut_short_is_left_out(self):
        path = os.path.join(temp_dir(self), "work.jsonl")
        with open(path, "w") as log:
            log.write('{"worker": "process 1"}\n{"worker": "proc')
        self.assertEqual(read_work_log(path), [{"worker": "process 1"}])

    def test_a_log_that_cannot_be_written_is_one_line(self):
        log = WorkLog(os.path.join(temp_dir(self), "no", "such", "work.jsonl"))
        with self.assertRaises(WorkLogError) as raised:
            log.open()
        self.assertIn("cannot write the work log", str(raised.exception))
        self.assertNotIn("\n", str(raised.exception))


class OptionCheckTests(SynchronousTestCase):
    def test_the_kinds_and_places(self):
        self.assertEqual(cost_kind("cpu"), "cpu")
        self.assertEqual(cost_place("process"), "process")
        with self.assertRaises(ValueError) as raised:
            cost_place("cloud")
        self.assertEqual(str(raised.exception), "expected one of loop, thread, process, got 'cloud'")

    def test_a_work_log_needs_a_folder_and_is_not_made_while_checking(self):
        folder = temp_dir(self)
        path = os.path.join(folder, "work.jsonl")
        self.assertEqual(validate.writable_file(path), path)
        self.assertFalse(os.path.exists(path))
        for bad in (folder, os.path.join(folder, "no", "work.jsonl"), ""):
            with self.subTest(bad), self.assertRaises(ValueError):
                validate.writable_file(bad)
