"""The lab's Part 20 pieces on their own: the cost a page may ask for, the work log read as it
grows, how many transforms ran at once, and the sentences made from those figures."""

from __future__ import annotations

import json
import os
import tempfile

from poetrynow.lab import part20
from poetrynow.lab.part20 import TransformCost, WorkTail, engines_sentence, most_at_once, work_sentence
from tests.time_limit import SynchronousTestCase


def spans(*pairs: tuple[float, float], worker: str = "main thread") -> list[dict]:
    return [{"began": began, "ended": ended, "worker": worker} for began, ended in pairs]


class TransformCostTests(SynchronousTestCase):
    def test_the_page_s_setting_becomes_the_server_s_options(self):
        cost = TransformCost.from_json({"cost": "0.25", "kind": "cpu", "place": "process"})
        self.assertEqual(cost.args(), ["--cost", "0.25", "--cost-kind", "cpu", "--cost-in", "process"])
        self.assertIsNone(TransformCost.from_json(None))
        self.assertEqual(TransformCost.from_json({}), TransformCost(0.5, "wait", "loop"))

    def test_a_bad_setting_says_why(self):
        for body, reason in [
            ({"cost": -1}, "a number of seconds"),
            ({"cost": "nan"}, "a number of seconds"),
            ({"cost": part20.MAX_COST + 0.1}, "at most 2 s"),
            ({"kind": ["wait"]}, "one of wait, cpu"),
            ({"place": "elsewhere"}, "one of loop, thread, process"),
            ([0.5, "wait", "loop"], "an object"),
        ]:
            with self.subTest(body=body):
                with self.assertRaises(ValueError) as said:
                    TransformCost.from_json(body)
                self.assertIn(reason, str(said.exception))


class WorkTailTests(SynchronousTestCase):
    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.path = os.path.join(folder.name, "work.jsonl")
        self.tail = WorkTail(self.path)

    def write(self, data: bytes) -> None:
        with open(self.path, "ab") as log:
            log.write(data)

    def test_nothing_before_the_server_writes(self):
        self.assertEqual(self.tail.new(), [])

    def test_each_line_once_and_a_half_line_when_it_is_whole(self):
        line = json.dumps({"began": 1.0, "ended": 1.5, "worker": "thread 1", "pid": 7}).encode()
        self.write(line + b"\n" + line[:10])
        self.assertEqual(self.tail.new(), spans((1.0, 1.5), worker="thread 1"))
        self.assertEqual(self.tail.new(), [])
        self.write(line[10:] + b"\n")
        self.assertEqual(self.tail.new(), spans((1.0, 1.5), worker="thread 1"))

    def test_what_is_not_a_record_is_skipped(self):
        self.write(b'not json\n{"began": "soon", "ended": 2, "worker": "x"}\n[1, 2]\n{"began": 1}\n')
        self.write(json.dumps({"began": 2.0, "ended": 3.0, "worker": "process 2"}).encode() + b"\n")
        self.assertEqual(self.tail.new(), spans((2.0, 3.0), worker="process 2"))

    def test_a_read_and_a_line_are_bounded(self):
        self.write(b"x" * (part20.READ_AT_ONCE * 2))  # an endless line: never held whole
        self.assertEqual(self.tail.new(), [])
        self.assertLessEqual(len(self.tail.partial), part20.LINE_LIMIT)
        self.assertEqual(self.tail.offset, part20.READ_AT_ONCE)
        self.write(b"\n" + json.dumps({"began": 0, "ended": 1, "worker": "w"}).encode() + b"\n")
        self.tail.new()
        self.assertEqual(self.tail.new(), spans((0.0, 1.0), worker="w"))


class OverlapTests(SynchronousTestCase):
    def test_most_at_once(self):
        self.assertEqual(most_at_once([]), 0)
        self.assertEqual(most_at_once(spans((0, 1), (1, 2), (2, 3))), 1)  # end to end: one at a time
        self.assertEqual(most_at_once(spans((0, 1), (0.5, 2), (0.9, 3))), 3)
        self.assertEqual(most_at_once(spans((0, 1), (2, 3), (2.5, 4))), 2)


class SentenceTests(SynchronousTestCase):
    def test_the_loop_takes_turns(self):
        said = work_sentence(spans((0, 0.5), (0.5, 1.0)), TransformCost(0.5, "wait", "loop"), 2)
        self.assertIn("2 transforms of 0.5 s (a blocking wait) in its reactor's thread, at most 1", said)
        self.assertIn("as Part 20 warns", said)

    def test_threads_overlap_waits_but_not_cpu_work(self):
        waits = work_sentence(spans((0, 0.5), (0.01, 0.51)), TransformCost(0.5, "wait", "thread"), 2)
        self.assertIn("at most 2 at once: they overlapped, 0.50 s each", waits)
        cpu = work_sentence(spans((0, 1.0), (0.01, 1.01)), TransformCost(0.5, "cpu", "thread"), 2)
        self.assertIn(
            "each took 1.00 s on the clock for 0.5 s of CPU: the threads took turns holding the GIL", cpu
        )
        shared = work_sentence(spans((0, 1.0), (0.01, 1.01)), TransformCost(0.5, "cpu", "process"), 1)
        self.assertIn("they shared 1 core.", shared)

    def test_poems_that_came_apart_had_nothing_to_overlap(self):
        said = work_sentence(spans((0, 0.5), (1, 1.5)), TransformCost(0.5, "wait", "thread"), 2)
        self.assertIn("nothing to overlap", said)
        self.assertIn("no poem reached it", work_sentence([], TransformCost(0.5, "wait", "thread"), 2))

    def test_the_engines_against_their_ideal(self):
        self.assertEqual(engines_sentence({}, 1.0, 0.5), "")
        one = engines_sentence({"twisted": 1.62}, 1.3, 0.3)
        self.assertEqual(
            one,
            "twisted took 1.62 s: the slowest server alone takes 1.30 s, and a poem's transform 0.3 s more.",
        )
        self.assertIn("each took 2.21 s", engines_sentence({"a": 2.211, "b": 2.209}, 1.3, 0.3))
        self.assertIn("took from 1.00 s to 2.00 s", engines_sentence({"a": 1.0, "b": 2.0}, 1.3, 0.3))
        cpu = engines_sentence({"twisted": 0.95}, 0.24, 0.3, shared=(2, 0.84))
        self.assertTrue(cpu.endswith("0.3 s more; as CPU work on 2 cores, 0.84 s at best."), cpu)
        self.assertNotIn("at best", engines_sentence({"twisted": 0.95}, 0.24, 0.3, shared=(4, 0.54)))
