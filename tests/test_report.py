"""The exact text of every line the reporter prints, against the articles' lines."""

import io
import json

from twisted.trial.unittest import SynchronousTestCase

from poetrynow.address import Address
from poetrynow.events import Connected, Failed, Finished, Received, Started
from poetrynow.report import elapsed, reporter_for
from poetrynow.tables import format_table

A = Address("127.0.0.1", 10000)
B = Address("127.0.0.1", 10001)


def render(style, events, began=100.0, ended=123.065661, as_json=False):
    out, err = io.StringIO(), io.StringIO()
    reporter = reporter_for(style, as_json, out=out, err=err)
    reporter.begin(began)
    for event in events:
        reporter.event(event)
    summary = reporter.end(ended)
    return out.getvalue().splitlines(), err.getvalue().splitlines(), summary


class ElapsedTests(SynchronousTestCase):
    def test_article_format(self):
        self.assertEqual(elapsed(10.126361), "0:00:10.126361")
        self.assertEqual(elapsed(23.065661), "0:00:23.065661")

    def test_never_negative(self):
        self.assertEqual(elapsed(-1), "0:00:00")


class BlockingLinesTests(SynchronousTestCase):
    def test_part_two_blocking_output(self):
        lines, err, summary = render(
            "blocking",
            [
                Started(task=1, address=A, t=100.0),
                Connected(task=1, address=A, t=100.001),
                Received(task=1, address=A, nbytes=1024, t=101.0),
                Finished(task=1, address=A, poem=b"x" * 3003, t=110.126361),
                Started(task=2, address=B, t=110.2),
                Finished(task=2, address=B, poem=b"y" * 623, t=116.521777),
            ],
        )
        self.assertEqual(
            lines,
            [
                "Task 1: get poetry from: 127.0.0.1:10000",
                "Task 1: got 3003 bytes of poetry from 127.0.0.1:10000 in 0:00:10.126361",
                "Task 2: get poetry from: 127.0.0.1:10001",
                "Task 2: got 623 bytes of poetry from 127.0.0.1:10001 in 0:00:06.321777",
                "Got 2 poems in 0:00:23.065661",
            ],
        )
        self.assertEqual(err, [])
        self.assertEqual(summary.exit_status, 0)


class SelectLinesTests(SynchronousTestCase):
    def test_part_two_select_output(self):
        lines, _err, _ = render(
            "select",
            [
                Started(task=1, address=A, t=100.0),
                Started(task=2, address=B, t=100.0),
                Received(task=1, address=A, nbytes=30, t=100.1),
                Received(task=2, address=B, nbytes=10, t=100.1),
                Finished(task=2, address=B, poem=b"y" * 10, t=100.2),
                Finished(task=1, address=A, poem=b"x" * 30, t=100.3),
            ],
            ended=110.133169,
        )
        self.assertEqual(
            lines,
            [
                "Task 1: got 30 bytes of poetry from 127.0.0.1:10000",
                "Task 2: got 10 bytes of poetry from 127.0.0.1:10001",
                "Task 2 finished",
                "Task 1 finished",
                "Task 1: 30 bytes of poetry",
                "Task 2: 10 bytes of poetry",
                "Got 2 poems in 0:00:10.133169",
            ],
        )

    def test_one_poem_is_singular(self):
        lines, _, _ = render("select", [Finished(task=1, address=A, poem=b"x", t=100.5)], ended=101.0)
        self.assertEqual(lines[-1], "Got 1 poem in 0:00:01")


class FailureTests(SynchronousTestCase):
    def test_failure_is_one_stderr_line_and_exit_one(self):
        lines, err, summary = render(
            "select",
            [
                Started(task=1, address=A, t=100.0),
                Failed(task=1, address=A, reason="Connection refused", t=100.0),
                Started(task=2, address=B, t=100.0),
                Finished(task=2, address=B, poem=b"poem", t=101.0),
            ],
            ended=101.0,
        )
        self.assertEqual(err, ["Task 1: failed to get poetry from 127.0.0.1:10000: Connection refused"])
        self.assertEqual(lines[-1], "Got 1 poem in 0:00:01")
        self.assertEqual(summary.exit_status, 1)


class JsonTests(SynchronousTestCase):
    def test_one_object_per_event_and_a_summary(self):
        poem = "Déjà vu\n".encode()
        lines, _, _ = render(
            "select",
            [
                Started(task=1, address=A, t=100.0),
                Received(task=1, address=A, nbytes=len(poem), t=100.5),
                Finished(task=1, address=A, poem=poem, t=101.0),
                Failed(task=2, address=B, reason="Connection refused", t=100.0, received=0),
            ],
            ended=101.0,
            as_json=True,
        )
        records = [json.loads(line) for line in lines]
        self.assertEqual(
            [r["event"] for r in records], ["started", "received", "finished", "failed", "summary"]
        )
        self.assertEqual(
            records[1],
            {"event": "received", "task": 1, "address": "127.0.0.1:10000", "t": 0.5, "bytes": len(poem)},
        )
        self.assertEqual(records[2]["poem"], "Déjà vu\n")
        self.assertEqual(records[2]["bytes"], 10)  # bytes, not characters
        self.assertEqual(records[3]["reason"], "Connection refused")
        self.assertEqual(records[4], {"event": "summary", "poems": 1, "failed": 1, "elapsed": 1.0})


class TableTests(SynchronousTestCase):
    def test_columns_align(self):
        text = format_table(("engine", "s"), [("blocking", "23.1"), ("select", "9.9")], right={1})
        self.assertEqual(text.splitlines(), ["engine       s", "blocking  23.1", "select     9.9"])
