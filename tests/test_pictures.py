"""Timelines drawn from recorded events, and the live progress display (issue: pictures).

Over 300 lines because the picture, the text picture and the live progress are drawn
from the same recorded events, which the tests share.
"""

from __future__ import annotations

import io
import os
import re
import subprocess

from poetrynow.address import Address
from poetrynow.events import Connected, Failed, Finished, Received, Started
from poetrynow.progress import HINT as PROGRESS_HINT
from poetrynow.timeline import HINT, Panel, TimelineError, draw, format_for, rows_of, text_timeline, waiting
from tests.extras import hidden, hiding, needs_matplotlib, needs_rich
from tests.support import command, free_port, run, servers, temp_dir
from tests.time_limit import SynchronousTestCase

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


def reads(task: int, thread: str, times: list[float], address: Address = A) -> list:
    """A task's events: started at its first time, a read at each later one, then finished."""
    start, *rest = times
    made: list = [Started(task=task, address=address, t=start, thread=thread)]
    made += [
        Received(task=task, address=address, nbytes=10, t=t + 0.01, began=t, thread=thread) for t in rest[:-1]
    ]
    made.append(Finished(task=task, address=address, poem=b"x" * 10, t=rest[-1], thread=thread))
    return made


#: Part 1's three figures, as their engines would report them (times in seconds from 0).
FIGURE_1 = reads(1, "MainThread", [0.0, 0.4, 0.8, 1.0]) + reads(2, "MainThread", [1.0, 1.4, 1.8, 2.0])
FIGURE_2 = reads(1, "poem-1", [0.0, 0.4, 0.8, 1.0]) + reads(2, "poem-2", [0.0, 0.5, 0.9, 1.0])
FIGURE_3 = sorted(
    reads(1, "MainThread", [0.0, 0.4, 0.8, 1.0]) + reads(2, "MainThread", [0.0, 0.5, 0.9, 1.0]),
    key=lambda e: e.t,
)


class LaneTests(SynchronousTestCase):
    """Made-up events, no sockets: every task's work lands on the lane of the thread that did it."""

    def test_the_blocking_engine_one_lane_tasks_one_after_another(self):
        panel = Panel("blocking", rows_of(FIGURE_1, 0.0))
        self.assertEqual(panel.lanes, ("main thread",))
        self.assertEqual(
            [(row.task, row.lane) for row in panel.rows], [(1, "main thread"), (2, "main thread")]
        )
        first, second = panel.rows
        self.assertLessEqual(first.end, second.start)  # no overlap: the staircase

    def test_the_threads_engine_a_lane_per_task_work_overlapping(self):
        panel = Panel("threads", rows_of(FIGURE_2, 0.0))
        self.assertEqual(panel.lanes, ("thread 1", "thread 2"))
        self.assertEqual([row.lane for row in panel.rows], ["thread 1", "thread 2"])
        first, second = panel.rows
        self.assertLess(second.start, first.end)  # both at work at once, each on its own thread

    def test_figure_3_engines_have_exactly_one_working_lane(self):
        panel = Panel("select", rows_of(FIGURE_3, 0.0))
        self.assertEqual(panel.lanes, ("main thread",))
        work = sorted((began, row.task) for row in panel.rows for began, _ in row.work)
        self.assertEqual([task for _, task in work], [1, 2, 1, 2])  # the tasks' bursts alternate
        self.assertEqual(
            [(round(b, 2), round(e, 2)) for b, e in panel.rows[0].work], [(0.4, 0.41), (0.8, 0.81)]
        )

    def test_waiting_is_one_task_s_alone_or_several_at_once(self):
        [lane_rows] = [Panel("select", rows_of(FIGURE_3, 0.0)).rows]
        self.assertEqual(
            [(left, right, whose) for left, right, whose in waiting(lane_rows, 1.0)], [(0.0, 1.0, None)]
        )
        staircase = Panel("blocking", rows_of(FIGURE_1, 0.0)).rows
        self.assertEqual([whose.task for _, _, whose in waiting(staircase, 2.0)], [1, 2])

    def test_the_text_timeline_of_a_fixed_run(self):
        failed = [
            Started(task=3, address=C, t=0.0, thread="MainThread"),
            Failed(task=3, address=C, reason="Connection refused", t=0.25, thread="MainThread"),
        ]
        panels = [
            Panel("blocking: 2.00 s", rows_of(FIGURE_1, 0.0)),
            Panel("threads: 1.00 s", rows_of(FIGURE_2, 0.0)),
            Panel("select: 1.00 s", rows_of(FIGURE_3 + failed, 0.0)),
        ]
        self.assertEqual(
            text_timeline(panels, width=20),
            "blocking: 2.00 s (1 thread)\n"
            "  task 1  main thread │────█───█─          │\n"
            "  task 2  main thread │          ────█───█─│\n"
            "threads: 1.00 s (2 threads)\n"
            "  task 1  thread 1    │────█───█─          │\n"
            "  task 2  thread 2    │─────█───█          │\n"
            "select: 1.00 s (1 thread)\n"
            "  task 1  main thread │────█───█─          │\n"
            "  task 2  main thread │─────█───█          │\n"
            "  task 3  main thread │──✗                 │\n"
            "                      └────────────────────┘\n"
            "                       0 s            2.0 s",
        )
        coloured = text_timeline(panels, width=20, colours=True)
        self.assertIn("\033[34m────█───█─          \033[0m", coloured)  # task 1 in its colour
        self.assertIn("\033[33m", coloured)  # task 2 in another


class DrawTests(SynchronousTestCase):
    @needs_matplotlib
    def test_png(self):
        path = os.path.join(temp_dir(self), "run.png")
        draw([Panel("blocking", rows_of(RECORDED, 100.0))], path)
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(data), 5000)

    @needs_matplotlib
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
            self.assertEqual(texts.count(label), 1, label)  # in the legend, beside its colour
        self.assertEqual(texts.count("main thread"), 2)  # a lane in each panel
        for words in (
            "work: the thread handles a read (a line, in its task's colour)",
            "waiting on that task's server",
        ):
            self.assertIn(words, texts)
        self.assertIn("waiting on several servers at once", texts)
        self.assertIn("blocking: 0.51 s", texts)
        self.assertIn("select: 0.20 s", texts)
        self.assertIn("seconds since the engine started", texts)

    @needs_matplotlib
    def test_unwritable_path_is_one_line(self):
        with self.assertRaises(TimelineError) as raised:
            draw([Panel("x", rows_of(RECORDED, 100.0))], os.path.join(temp_dir(self), "no", "such", "x.png"))
        self.assertIn("cannot write", str(raised.exception))

    def test_without_matplotlib_one_line_that_names_the_extra(self):
        path = os.path.join(temp_dir(self), "run.png")
        with hidden("matplotlib"), self.assertRaises(TimelineError) as raised:
            draw([Panel("x", rows_of(RECORDED, 100.0))], path)
        self.assertEqual(str(raised.exception), HINT)
        self.assertFalse(os.path.exists(path))


class CommandTests(SynchronousTestCase):
    @needs_matplotlib
    def test_get_poetry_timeline_from_a_real_run(self):
        path = os.path.join(temp_dir(self), "get.svg")
        with servers(("kettle", "--num-bytes", "200", "--delay", "0.01", "--quiet")) as running:
            dead = str(free_port())
            result = run("get-poetry", "--engine", "select", "--timeline", path, str(running[0].port), dead)
        self.assertEqual(result.returncode, 1)  # the refused task; the picture is still drawn
        texts = svg_texts(path)
        self.assertIn("main thread", texts)
        self.assertIn(f"Task 1  127.0.0.1:{running[0].port}", texts)
        self.assertIn(f"Task 2  127.0.0.1:{dead}", texts)
        self.assertIn("get-poetry --engine select", texts)

    def test_bad_timeline_name_is_a_usage_error_before_anything_runs(self):
        result = run("get-poetry", "--timeline", "run.gif", "10000")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr.splitlines(), ["get-poetry: error: --timeline writes .png or .svg, not '.gif'"]
        )

    def test_get_poetry_timeline_without_matplotlib_is_a_usage_error_before_anything_runs(self):
        path = os.path.join(temp_dir(self), "get.png")
        result = subprocess.run(
            [*command("get-poetry"), "--timeline", path, str(free_port())],
            capture_output=True,
            text=True,
            env=hiding("matplotlib", temp_dir(self)),
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr.splitlines(), [f"get-poetry: error: {HINT}"])
        self.assertEqual(result.stdout, "")  # nothing was fetched
        self.assertFalse(os.path.exists(path))

    @needs_matplotlib
    def test_demo_timeline_has_a_panel_per_engine(self):
        path = os.path.join(temp_dir(self), "demo.svg")
        result = run(
            "poetrynow", "demo", "--delay", "0", "--engines", "blocking,threads,lazy", "--timeline", path
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"The timeline is in {path}.", result.stdout)
        texts = svg_texts(path)
        panels = [t for t in texts if re.match(r"^\w+: \d+\.\d\d s, ", t)]
        self.assertEqual([p.split(":")[0] for p in panels], ["blocking", "threads", "lazy"])
        self.assertEqual(texts.count("thread 3"), 1)  # the threads engine: a lane per task
        self.assertEqual(texts.count("main thread"), 2)  # blocking and lazy: one thread each

    def demo(self, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, str]:
        """``poetrynow demo`` in a fresh directory, as a user runs it; the result and the directory."""
        where = temp_dir(self)
        result = subprocess.run(
            [*command("poetrynow"), "demo", "--delay", "0.01", *args],
            capture_output=True,
            text=True,
            cwd=where,
            env={**os.environ, **(env or {})},
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        return result, where

    @needs_matplotlib
    def test_the_demo_draws_its_picture_by_default_and_shows_it_as_text(self):
        result, where = self.demo()
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(where, "demo-timeline.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        out = result.stdout
        self.assertLess(out.index("ideal"), out.index("blocking: "))  # the table, then the picture
        self.assertRegex(out, r"\n  task 1  main thread +│[█─ ]+│\n")
        self.assertIn("(1 thread)", out)
        self.assertEqual(out.splitlines()[-1], "The timeline is in demo-timeline.png.")

    def test_no_timeline_writes_no_file_but_still_shows_the_text(self):
        result, where = self.demo("--no-timeline")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(os.listdir(where), [])
        self.assertIn("  task 3  main thread", result.stdout)
        self.assertNotIn("timeline is in", result.stdout)

    def test_without_matplotlib_the_text_picture_and_a_one_line_hint(self):
        result, where = self.demo(env=hiding("matplotlib", temp_dir(self)))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(os.listdir(where), [])
        self.assertIn("  task 1  main thread", result.stdout)
        self.assertEqual(
            result.stdout.splitlines()[-1],
            "No picture file: the timeline picture needs matplotlib: pip install 'poetrynow[plot]' "
            "(or 'poetrynow[all]').",
        )

    def test_get_poetry_timeline_dash_prints_the_text_timeline(self):
        with servers(("kettle", "--num-bytes", "200", "--delay", "0.01", "--quiet")) as running:
            result = run("get-poetry", "--engine", "threads", "--timeline", "-", str(running[0].port))
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[-4], "get-poetry --engine threads (1 thread)")
        self.assertRegex(lines[-3], r"^  task 1  thread 1 │[█─ ]+│$")

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
            # How many reads a poem took depends on timing (two chunks may come in one
            # read); what each task got in all, and the other lines, do not.
            got: dict[str, int] = {}
            rest = []
            for line in out.splitlines():
                if match := re.match(r"^(Task \d+): got (\d+) bytes of poetry from ", line):
                    got[match[1]] = got.get(match[1], 0) + int(match[2])
                elif not line.startswith("Got "):
                    rest.append(line)
            return got, rest

        self.assertEqual(strip(progress.stdout), strip(plain.stdout))
        self.assertNotIn("\x1b[", progress.stdout)  # no terminal codes in a pipe


class LiveDisplayTests(SynchronousTestCase):
    @needs_rich
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

    @needs_rich
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

    def on_a_terminal(self, env: dict[str, str] | None = None) -> tuple[int, str]:
        """``get-poetry --progress`` on a pseudo-terminal: its exit status and what the screen got."""
        import pty

        with servers(("kettle", "--num-bytes", "50", "--delay", "0.05", "--quiet")) as running:
            leader, follower = pty.openpty()
            process = subprocess.Popen(
                command("get-poetry") + ["--engine", "select", "--progress", str(running[0].port)],
                stdout=follower,
                stderr=follower,
                stdin=subprocess.DEVNULL,
                env=env,
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
        return process.returncode, b"".join(chunks).decode("utf-8", "replace")

    @needs_rich
    def test_a_terminal_gets_the_display_and_a_clean_screen_after(self):
        # The display is drawn, then erased, and the usual end lines follow.
        status, screen = self.on_a_terminal()
        self.assertEqual(status, 0)
        self.assertIn("receiving", screen)  # the live table was drawn
        self.assertNotIn("Task 1: got 50 bytes", screen)  # its rows replace the chunk lines
        self.assertIn("Task 1: 636 bytes of poetry", screen)
        self.assertRegex(screen, r"Got 1 poem in 0:00:\d\d\.\d{6}\s*$")

    def test_without_rich_a_terminal_gets_a_hint_then_the_plain_lines(self):
        status, screen = self.on_a_terminal(hiding("rich", temp_dir(self)))
        self.assertEqual(status, 0)
        lines = screen.splitlines()
        self.assertEqual(lines[0], PROGRESS_HINT)
        self.assertIn("Task 1: got 50 bytes of poetry from 127.0.0.1:", lines[1])
        self.assertIn("Task 1: 636 bytes of poetry", lines)
        self.assertRegex(lines[-1], r"^Got 1 poem in 0:00:\d\d\.\d{6}$")
