"""``poetrynow demo --transform-cost``: its table and closing words on made-up runs, and one real run."""

from __future__ import annotations

import json
import os

from poetrynow.address import Address
from poetrynow.costdemo import panels_of
from poetrynow.costruns import CostRun, cost_table, cost_verdict, ideal
from poetrynow.events import Failed, Finished
from poetrynow.report import Summary
from tests.support import run, temp_dir
from tests.time_limit import SynchronousTestCase
from tests.trace_format import check_trace, slices, thread_names

A = Address("127.0.0.1", 10000)
ORIGINAL, TRANSFORMED = b"The Kettle\n", b"the kettle\n"


def made_up(place: str, kind: str, elapsed: float, poems=None, failed=(), work=()) -> CostRun:
    finished = [
        Finished(task=n, address=A, poem=poem, t=elapsed)
        for n, poem in enumerate(poems or [TRANSFORMED] * 4, 1)
    ]
    summary = Summary(elapsed=elapsed, finished=finished, failed=list(failed))
    return CostRun(place, kind, summary, ORIGINAL, list(work))


#: What two cores show for S = 0.5: the loop serialises, threads overlap only waits, processes both.
AS_EXPECTED = [
    made_up("loop", "wait", 2.02),
    made_up("loop", "cpu", 2.01),
    made_up("thread", "wait", 0.51),
    made_up("thread", "cpu", 2.03),
    made_up("process", "wait", 0.52),
    made_up("process", "cpu", 1.02),
]


class IdealTests(SynchronousTestCase):
    def test_waits_overlap_fully_and_cpu_work_over_the_cores(self):
        self.assertEqual(ideal(0.5, "wait", 4, cores=1), 0.5)
        self.assertEqual([ideal(0.5, "cpu", 4, cores=n) for n in (1, 2, 3, 4, 8)], [2.0, 1.0, 1.0, 0.5, 0.5])


class TableTests(SynchronousTestCase):
    def test_a_row_per_run_against_its_ideal(self):
        rows = [line.split() for line in cost_table(AS_EXPECTED, 0.5, cores=2).splitlines()]
        self.assertEqual(rows[0], ["placement", "kind", "measured", "ideal", "measured/ideal", "transformed"])
        self.assertEqual(rows[1], ["loop", "wait", "2.02", "s", "0.50", "s", "4.04", "4/4"])
        self.assertEqual(rows[4], ["thread", "cpu", "2.03", "s", "1.00", "s", "2.03", "4/4"])
        self.assertEqual(rows[6], ["process", "cpu", "1.02", "s", "1.00", "s", "1.02", "4/4"])

    def test_no_cost_has_no_ratio(self):
        self.assertEqual(
            cost_table([made_up("loop", "wait", 0.01)], 0.0, cores=2).splitlines()[1].split()[-2], "-"
        )


class VerdictTests(SynchronousTestCase):
    def test_the_expected_lesson_when_the_numbers_show_it(self):
        words = cost_verdict(AS_EXPECTED, 0.5, cores=2)
        self.assertIn(
            "4 blocking waits of 0.5 s took 2.02 s: the loop served the clients one at a time", words
        )
        self.assertIn("A thread pool overlapped the waits: 0.51 s, 4.0 times as fast as the loop.", words)
        self.assertIn(
            "CPU work gained little from threads, 2.03 s against 2.01 s in the loop: only the", words
        )
        self.assertIn("Processes spread it over the 2 cores: 1.02 s, 2.0 times as fast.", words)
        self.assertIn("Processes overlapped the waits too: 0.52 s.", words)

    def test_numbers_that_come_out_otherwise_are_said_as_they_are(self):
        runs = [
            made_up("loop", "wait", 1.2),
            made_up("loop", "cpu", 2.0),
            made_up("thread", "wait", 1.5),
            made_up("thread", "cpu", 1.0),
            made_up("process", "wait", 1.9),
            made_up("process", "cpu", 1.9),
        ]
        words = cost_verdict(runs, 0.5, cores=2)
        self.assertIn("took 1.20 s, less than one after another (2.00 s)", words)
        self.assertIn("A thread pool did not overlap the waits here: 1.50 s", words)
        self.assertIn("threads helped here", words)
        self.assertIn("Processes did not spread the CPU work here: 1.90 s against 1.00 s (2 cores).", words)
        self.assertIn("Processes did not overlap the waits here: 1.90 s.", words)
        for claim in ("one at a time", "overlapped the waits:", "gained little", "spread it over"):
            self.assertNotIn(claim, words)

    def test_processes_spread_it_over_no_more_cores_than_there_are_clients(self):
        # Four worker processes ran, one for each client: 64 cores are not all used.
        self.assertIn(
            "Processes spread it over the 4 cores: 1.02 s", cost_verdict(AS_EXPECTED, 0.5, cores=64)
        )

    def test_one_core_cannot_spread_cpu_work(self):
        self.assertIn(
            "With one core, processes could not spread the CPU work", cost_verdict(AS_EXPECTED, 0.5, cores=1)
        )

    def test_a_run_without_every_poem_transformed_is_not_judged(self):
        refused = made_up("thread", "wait", 0.5, poems=[TRANSFORMED, ORIGINAL, TRANSFORMED[:4]])
        refused.summary.failed.append(Failed(task=4, address=A, reason="Connection refused", t=0.1))
        self.assertEqual(
            refused.short(),
            [
                "thread wait: task 4 got no poem: Connection refused",
                "thread wait: task 2's poem came back untransformed",
                "thread wait: task 3's poem is not whole: 4 of 11 bytes",
            ],
        )
        words = cost_verdict([made_up("loop", "wait", 2.0), refused], 0.5, cores=2)
        self.assertIn("Not judged: thread wait did not get every poem back transformed.", words)
        self.assertNotIn("thread pool", words)

    def test_no_cost(self):
        words = cost_verdict([made_up("loop", "wait", 0.02), made_up("process", "cpu", 0.03)], 0.0, cores=2)
        self.assertEqual(
            words, "With no cost there is nothing to overlap: the runs took from 0.02 s to 0.03 s."
        )


class TimelineTests(SynchronousTestCase):
    def test_the_server_s_work_has_lanes_of_its_own(self):
        work = [
            {
                "began": 10.6,
                "ended": 11.1,
                "worker": "thread 2",
                "pid": 9,
                "transform": "cummingsify",
                "bytes": 11,
            },
            {
                "began": 10.1,
                "ended": 10.6,
                "worker": "thread 1",
                "pid": 9,
                "transform": "cummingsify",
                "bytes": 11,
            },
        ]
        running = made_up("thread", "wait", 1.0, work=work)
        running.summary.began = 10.0
        [panel] = panels_of([running], 0.5, cores=2)
        self.assertEqual(panel.title, "thread wait: 1.00 s, ideal 0.50 s")
        server = [row for row in panel.rows if row.lane.startswith("server")]
        lanes = [(row.name, row.lane) for row in server]
        self.assertEqual(lanes, [("transform 1", "server thread 1"), ("transform 2", "server thread 2")])
        self.assertEqual(
            [tuple(round(t, 2) for t in row.work[0]) for row in server], [(0.1, 0.6), (0.6, 1.1)]
        )


class CommandTests(SynchronousTestCase):
    def test_the_demo_measures_every_placement_and_kind(self):
        path = os.path.join(temp_dir(self), "cost.json")
        argv = ("poetrynow", "demo", "--transform-cost", "0.05", "--no-timeline", "--trace", path)
        result = run(*argv, timeout=120)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        lines = result.stdout.splitlines()
        header = lines.index("placement  kind  measured   ideal  measured/ideal  transformed")
        rows = [line.split() for line in lines[header + 1 : header + 7]]
        self.assertEqual(
            [row[:2] for row in rows],
            [[p, k] for p in ("loop", "thread", "process") for k in ("wait", "cpu")],
        )
        self.assertEqual({row[-1] for row in rows}, {"4/4"})
        self.assertIn("In the reactor's thread, 4 blocking waits of 0.05 s took", result.stdout)
        self.assertIn("transform 1  server main thread", result.stdout)  # the text timeline
        self.assertNotIn("The timeline is in", result.stdout)
        self.assertEqual(result.stderr, "")
        # The trace: each run's clients, then its server's work, a track per worker.
        with open(path) as trace:
            events = check_trace(json.load(trace))
        processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
        self.assertEqual(len(processes), 12)
        work = slices(events, cat="work")
        self.assertEqual(len(work), 6 * 4)
        thread_wait = next(
            pid for pid, name in processes.items() if name.startswith("thread wait: transformedpoetry")
        )
        # Four transforms, on as many threads as the pool used: an idle thread takes the next
        # job, so a loaded machine may show three, or fewer.
        self.assertEqual(len(slices(events, thread_wait, cat="work")), 4)
        names = set(thread_names(events, thread_wait).values())
        self.assertTrue(names, "no server thread in the trace")
        self.assertLessEqual(names, {f"server thread {n}" for n in range(1, 5)})
