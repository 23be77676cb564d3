"""Timelines drawn from recorded events, and the live progress display (issue: pictures)."""

from __future__ import annotations

import io
import os
import re
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from poetrynow.address import Address
from poetrynow.events import Connected, Failed, Finished, Received, Started
from poetrynow.timeline import Panel, TimelineError, draw, format_for, rows_of
from tests.support import command, free_port, run, servers, temp_dir

A, B, C = Address("127.0.0.1", 10001), Address("127.0.0.1", 10002), Address("localhost", 10003)

#: Three tasks as the blocking engine would see them, the third refused.
RECORDED = [
    Started(task=1, address=A, t=100.0),
    Connected(task=1, address=A, t=100.01),
    Received(task=1, address=A, nbytes=10, t=100.1),
    Received(task=1, address=A, nbytes=10, t=100.2),
    Finished(task=1, address=A, poem=b"x" * 20, t=100.3),
    Started(task=2, address=B, t=100.3),
    Connected(task=2, address=B, t=100.31),
    Received(task=2, address=B, nbytes=30, t=100.4),
    Finished(task=2, address=B, poem=b"y" * 30, t=100.5),
    Started(task=3, address=C, t=100.5),
    Failed(task=3, address=C, reason="Connection refused", t=100.51),
]


def svg_texts(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return re.findall(r"<text[^>]*>([^<]*)</text>", f.read())


class RowsTests(SynchronousTestCase):
    def test_rows_are_tasks_with_their_chunks_and_ends(self):
        rows = rows_of(RECORDED, 100.0)
        self.assertEqual(
            [r.label for r in rows],
            ["Task 1  127.0.0.1:10001", "Task 2  127.0.0.1:10002", "Task 3  localhost:10003"],
        )
        self.assertEqual([round(t, 3) for t in rows[0].chunks], [0.1, 0.2])
        self.assertAlmostEqual(rows[1].start, 0.3)
        self.assertAlmostEqual(rows[1].end, 0.5)
        self.assertEqual([r.failed for r in rows], [False, False, True])

    def test_a_task_still_running_has_no_end(self):
        [row] = rows_of(
            [Started(task=1, address=A, t=5.0), Received(task=1, address=A, nbytes=3, t=5.5)], 5.0
        )
        self.assertIsNone(row.end)

    def test_only_png_and_svg(self):
        self.assertEqual((format_for("a.PNG"), format_for("b.svg")), ("png", "svg"))
        with self.assertRaises(TimelineError) as raised:
            format_for("picture.jpg")
        self.assertIn("png or .svg", str(raised.exception))


class DrawTests(SynchronousTestCase):
    def test_png(self):
        path = os.path.join(temp_dir(self), "run.png")
        draw([Panel("blocking", rows_of(RECORDED, 100.0))], path)
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(data), 5000)

    def test_svg_has_a_text_node_per_task_label_and_panel(self):
        path = os.path.join(temp_dir(self), "run.svg")
        draw(
            [
                Panel("blocking: 0.51 s", rows_of(RECORDED, 100.0)),
                Panel("select: 0.20 s", rows_of(RECORDED[:5], 100.0)),
            ],
            path,
        )
        self.assertGreater(os.path.getsize(path), 5000)
        texts = svg_texts(path)
        for label in ["Task 1  127.0.0.1:10001", "Task 2  127.0.0.1:10002", "Task 3  localhost:10003"]:
            self.assertIn(label, texts)
        self.assertEqual(texts.count("Task 1  127.0.0.1:10001"), 2)  # once per panel
        self.assertIn("blocking: 0.51 s", texts)
        self.assertIn("select: 0.20 s", texts)
        self.assertIn("seconds since the engine started", texts)

    def test_unwritable_path_is_one_line(self):
        with self.assertRaises(TimelineError) as raised:
            draw([Panel("x", rows_of(RECORDED, 100.0))], os.path.join(temp_dir(self), "no", "such", "x.png"))
        self.assertIn("cannot write", str(raised.exception))


class CommandTests(SynchronousTestCase):
    def test_get_poetry_timeline_from_a_real_run(self):
        path = os.path.join(temp_dir(self), "get.svg")
        with servers(("kettle", "--num-bytes", "200", "--delay", "0.01", "--quiet")) as running:
            dead = str(free_port())
            result = run("get-poetry", "--engine", "select", "--timeline", path, str(running[0].port), dead)
        self.assertEqual(result.returncode, 1)  # the refused task; the picture is still drawn
        texts = svg_texts(path)
        self.assertIn(f"Task 1  127.0.0.1:{running[0].port}", texts)
        self.assertIn(f"Task 2  127.0.0.1:{dead}", texts)
        self.assertIn("get-poetry --engine select", texts)

    def test_bad_timeline_name_is_a_usage_error_before_anything_runs(self):
        result = run("get-poetry", "--timeline", "run.gif", "10000")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr.splitlines(), ["get-poetry: error: --timeline writes .png or .svg, not '.gif'"]
        )

    def test_demo_timeline_has_a_panel_per_engine(self):
        path = os.path.join(temp_dir(self), "demo.svg")
        result = run(
            "poetrynow", "demo", "--delay", "0", "--engines", "blocking,threads,lazy", "--timeline", path
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"The timeline is in {path}.", result.stdout)
        panels = [t for t in svg_texts(path) if re.match(r"^\w+: \d+\.\d\d s$", t)]
        self.assertEqual([p.split(":")[0] for p in panels], ["blocking", "threads", "lazy"])

    def test_progress_falls_back_to_plain_lines_on_a_pipe(self):
        with servers(
            ("kettle", "--num-bytes", "300", "--delay", "0.01", "--quiet"),
            ("relay", "--num-bytes", "300", "--delay", "0.01", "--quiet"),
        ) as running:
            port = str(running[0].port)
            plain = run("get-poetry", "--engine", "select", port)
            progress = run("get-poetry", "--engine", "select", "--progress", port)
        self.assertEqual(progress.returncode, 0, progress.stderr)
        self.assertEqual(progress.stderr, "")

        def strip(out):
            return [line for line in out.splitlines() if not line.startswith("Got ")]

        self.assertEqual(strip(progress.stdout), strip(plain.stdout))
        self.assertNotIn("\x1b[", progress.stdout)  # no terminal codes in a pipe


class LiveDisplayTests(SynchronousTestCase):
    def test_the_table_shows_each_task_its_state_bytes_and_rate(self):
        from rich.console import Console

        from poetrynow.progress import LiveProgress

        screen = io.StringIO()
        console = Console(file=screen, force_terminal=True, width=100, color_system=None)
        now = [100.0]
        with LiveProgress(console=console, clock=lambda: now[0]) as live:
            for event in RECORDED:
                now[0] = event.t
                live.event(event)
            table = live.tally
        self.assertEqual(table.tasks[1].state, "done")
        self.assertEqual(table.tasks[1].nbytes, 20)
        self.assertAlmostEqual(table.tasks[1].rate(999.0), 20 / 0.2)  # bytes over first-byte..end
        self.assertEqual(table.tasks[3].state, "failed")
        drawn = screen.getvalue()
        self.assertIn("127.0.0.1:10002", drawn)
        self.assertIn("3 tasks: 2 done, 1 failed", drawn)

    def test_thousands_of_tasks_show_a_screenful_and_a_count(self):
        from rich.console import Console

        from poetrynow.progress import Tally, render

        tally = Tally()
        for task in range(1, 2001):
            tally.update(Started(task=task, address=A, t=0.0))
        for task in range(1, 1001):
            tally.update(Finished(task=task, address=A, poem=b"", t=1.0))
        screen = io.StringIO()
        Console(file=screen, width=100, color_system=None).print(render(tally, 2.0, max_rows=5))
        lines = screen.getvalue().splitlines()
        self.assertLess(len(lines), 12)
        self.assertIn("2000 tasks: 1000 connecting, 1000 done (1995 more not shown)", screen.getvalue())
        self.assertIn("1001", screen.getvalue())  # running tasks come first

    def test_a_terminal_gets_the_display_and_a_clean_screen_after(self):
        # A pseudo-terminal: the display is drawn, then erased, and the usual end lines follow.
        import pty

        with servers(("kettle", "--num-bytes", "50", "--delay", "0.05", "--quiet")) as running:
            leader, follower = pty.openpty()
            process = subprocess.Popen(
                command("get-poetry") + ["--engine", "select", "--progress", str(running[0].port)],
                stdout=follower,
                stderr=follower,
                stdin=subprocess.DEVNULL,
            )
            os.close(follower)
            chunks = []
            while True:
                try:
                    data = os.read(leader, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            process.wait(60)
            os.close(leader)
        screen = b"".join(chunks).decode("utf-8", "replace")
        self.assertEqual(process.returncode, 0)
        self.assertIn("receiving", screen)  # the live table was drawn
        self.assertNotIn("Task 1: got 50 bytes", screen)  # its rows replace the chunk lines
        self.assertIn("Task 1: 636 bytes of poetry", screen)
        self.assertRegex(screen, r"Got 1 poem in 0:00:\d\d\.\d{6}\s*$")
