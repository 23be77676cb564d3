"""The exact text of every line the reporter prints, against the articles' lines.

Over 300 lines because it is a catalogue: one golden line per event per engine style,
and a catalogue split in two is harder to check against the articles than a long one.
"""

import io
import json

from poetrynow.address import Address
from poetrynow.clients import ENGINES
from poetrynow.events import (
    Connected,
    Failed,
    Finished,
    PoemLine,
    Received,
    Restarted,
    Started,
    Transformed,
    TransformFailed,
)
from poetrynow.report import STYLES, elapsed, reporter_for
from poetrynow.tables import format_table
from tests.time_limit import SynchronousTestCase

A = Address("127.0.0.1", 10000)
B = Address("127.0.0.1", 10001)


def render(style, events, began=100.0, ended=123.065661, as_json=False, **settings):
    out, err = io.StringIO(), io.StringIO()
    reporter = reporter_for(style, as_json, out=out, err=err, **settings)
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
                Received(task=1, address=A, nbytes=len(poem), t=100.5, thread="MainThread", began=100.25),
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
            {
                "event": "received",
                "task": 1,
                "address": "127.0.0.1:10000",
                "t": 0.5,
                "thread": "MainThread",
                "work": 0.25,  # seconds the engine spent handling the read
                "bytes": len(poem),
            },
        )
        self.assertEqual(records[2]["poem"], "Déjà vu\n")
        self.assertEqual(records[2]["bytes"], 10)  # bytes, not characters
        self.assertEqual(records[3]["reason"], "Connection refused")
        self.assertEqual(records[0], {"event": "started", "task": 1, "address": "127.0.0.1:10000", "t": 0.0})
        self.assertEqual(
            records[4], {"event": "summary", "poems": 1, "failed": 1, "bytes": 10, "elapsed": 1.0}
        )


class TableTests(SynchronousTestCase):
    def test_columns_align(self):
        text = format_table(("engine", "s"), [("blocking", "23.1"), ("select", "9.9")], right={1})
        self.assertEqual(text.splitlines(), ["engine       s", "blocking  23.1", "select     9.9"])


#: A poem with a character that a read could split, and two lines.
POEM = "Déjà vu,\nagain.\n".encode()


def one_poem(task=1, address=A, refused=None):
    """Task 1 downloads POEM in two reads; task 2 (at ``refused``) is refused."""
    events = [
        Started(task=task, address=address, t=100.0),
        Connected(task=task, address=address, t=100.01),
        Received(task=task, address=address, nbytes=4, t=100.5),
        Received(task=task, address=address, nbytes=len(POEM) - 4, t=101.0),
        Finished(task=task, address=address, poem=POEM, t=102.25),
    ]
    if refused:
        events[1:1] = [
            Started(task=2, address=refused, t=100.0),
            Failed(task=2, address=refused, reason="Connection refused", t=100.0),
        ]
    return events


class StyleTableTests(SynchronousTestCase):
    def test_every_engine_row_names_a_style_the_reporter_has(self):
        for name, info in ENGINES.items():
            self.assertIn(info.style, STYLES, name)

    def test_json_replaces_any_style(self):
        for style in STYLES:
            lines, _, _ = render(style, one_poem(), as_json=True)
            self.assertEqual(json.loads(lines[-1])["event"], "summary")


class ThreadsAndAsyncioLinesTests(SynchronousTestCase):
    """threads and asyncio print the select lines: a line per read, sizes, a total; failures on stderr."""

    def test_select_style_with_a_refused_task(self):
        for engine in ("threads", "asyncio", "select"):
            lines, err, summary = render(ENGINES[engine].style, one_poem(refused=B), ended=102.5)
            self.assertEqual(err, ["Task 2: failed to get poetry from 127.0.0.1:10001: Connection refused"])
            self.assertEqual(
                lines,
                [
                    "Task 1: got 4 bytes of poetry from 127.0.0.1:10000",
                    f"Task 1: got {len(POEM) - 4} bytes of poetry from 127.0.0.1:10000",
                    "Task 1 finished",
                    f"Task 1: {len(POEM)} bytes of poetry",
                    "Got 1 poem in 0:00:02.500000",
                ],
            )
            self.assertEqual(summary.exit_status, 1)

    def test_no_chunk_lines_while_a_live_display_shows_them(self):
        lines, _, _ = render("select", one_poem(), chunk_lines=False)
        self.assertFalse([line for line in lines if "got" in line])
        self.assertIn("Task 1 finished", lines)


class TwistedLinesTests(SynchronousTestCase):
    """Client 7.0/8.0: the select lines with each poem as it is done; the article's failure line."""

    def test_lines_poem_and_failure(self):
        events = one_poem(refused=B)
        events.insert(-1, Transformed(task=1, address=A, transform="cummingsify", t=102.2))
        lines, err, _ = render("twisted", events, ended=102.5)
        self.assertEqual(err, ["Task 2: failed to get poetry from 127.0.0.1:10001: Connection refused"])
        self.assertEqual(
            lines[2:6], ["Task 1 finished", "Déjà vu,", "again.", f"Task 1: {len(POEM)} bytes of poetry"]
        )
        self.assertEqual(lines[-1], "Got 1 poem in 0:00:02.500000")

    def test_no_poems(self):
        lines, _, _ = render("twisted", one_poem(), print_poems=False)
        self.assertNotIn("again.", lines)

    def test_a_failed_transform_is_one_line_and_the_poem_stays(self):
        events = one_poem()
        events.insert(
            -1,
            TransformFailed(
                task=1,
                address=A,
                transform="explode",
                reason="the transform server closed without an answer",
                t=102.0,
            ),
        )
        lines, err, summary = render("twisted", events)
        self.assertEqual(
            err,
            ["Explode failed! Task 1 keeps the original poem: the transform server closed without an answer"],
        )
        self.assertIn("Déjà vu,", lines)
        self.assertEqual(summary.exit_status, 0)


class ActorsLinesTests(SynchronousTestCase):
    """Part 20: a line per chunk, then each poem under a line with its download time."""

    def test_chunks_then_poem_with_its_time(self):
        lines, err, _ = render("actors", one_poem(), ended=102.5)
        self.assertEqual(err, [])
        self.assertEqual(
            lines,
            [
                "Task 1: got 4 bytes of poetry from 127.0.0.1:10000",
                f"Task 1: got {len(POEM) - 4} bytes of poetry from 127.0.0.1:10000",
                f"Task 1: got {len(POEM)} bytes of poetry from 127.0.0.1:10000 in 0:00:02.250000",
                "Déjà vu,",
                "again.",
                "Got 1 poem in 0:00:02.500000",
            ],
        )

    def test_restarts_are_stderr_lines(self):
        events = [
            Started(task=1, address=A, t=100.0),
            Restarted(task=1, address=A, reason="Connection refused", attempt=1, limit=2, t=100.1),
            Restarted(task=1, address=A, reason="Connection refused", attempt=2, limit=2, t=100.2),
            Failed(task=1, address=A, reason="Connection refused", t=100.3),
        ]
        _, err, summary = render("actors", events)
        self.assertEqual(
            err,
            [
                "Task 1 crashed (Connection refused); restarting it (1 of 2)",
                "Task 1 crashed (Connection refused); restarting it (2 of 2)",
                "Task 1: failed to get poetry from 127.0.0.1:10000: Connection refused",
            ],
        )
        self.assertEqual(summary.exit_status, 1)


class LazyLinesTests(SynchronousTestCase):
    """Part 21: a line per line of poetry received, and the poem's lines as they are handed on."""

    def test_received_lines_and_poem_lines(self):
        events = [
            Started(task=1, address=A, t=100.0),
            Received(task=1, address=A, nbytes=10, t=100.1),
            PoemLine(task=1, address=A, text="Déjà vu,\n", t=100.1),
            Received(task=1, address=A, nbytes=6, t=100.2),
            PoemLine(task=1, address=A, text="again.", t=100.2),  # a last line without a newline
            Finished(task=1, address=A, poem=POEM[:-1], t=100.3),
        ]
        lines, _, _ = render("lazy", events, ended=100.5)
        self.assertEqual(
            lines,
            [
                "Task 1: got 10 bytes of poetry from 127.0.0.1:10000",
                "Déjà vu,",
                "Task 1: got 6 bytes of poetry from 127.0.0.1:10000",
                "again.",
                "Got 1 poem in 0:00:00.500000",
            ],
        )
