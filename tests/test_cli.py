"""Exit codes and one-line errors of the real commands, run as subprocesses (or in-process for usage)."""

import io
import os
import re
import signal
import socket
from contextlib import redirect_stderr

from poetrynow.cli import getpoetry
from poetrynow.clients import ENGINES
from tests.support import Server, free_port, run, servers
from tests.time_limit import SynchronousTestCase


def usage_error(*argv: str) -> tuple[int, str]:
    """Run ``get-poetry`` in this process (argparse may stop it): the status and stderr."""
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            status = getpoetry.main(list(argv))
        except SystemExit as stop:
            status = stop.code
    return status, err.getvalue()


class GetPoetryCommandTests(SynchronousTestCase):
    def test_no_address_is_a_usage_error(self):
        result = run("get-poetry")
        self.assertEqual(result.returncode, 2)
        self.assertIn("usage: get-poetry", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    def test_port_zero_or_out_of_range_is_a_usage_error(self):
        for address in ["0", "localhost:0", "65536", "[::1]:0", "\u0661\u0660\u0660\u0660\u0660"]:
            with self.subTest(address=address):
                status, err = usage_error(address)
                self.assertEqual(status, 2)
                self.assertIn("bad address", err.splitlines()[-1])

    def test_bad_address_is_a_usage_error(self):
        result = run("get-poetry", "not-a-port")
        self.assertEqual(result.returncode, 2)
        self.assertIn("bad address 'not-a-port'", result.stderr.splitlines()[-1])
        self.assertNotIn("Traceback", result.stderr)

    def test_unknown_engine_is_a_usage_error(self):
        result = run("get-poetry", "--engine", "telepathy", "10000")
        self.assertEqual(result.returncode, 2)
        self.assertIn("invalid choice: 'telepathy'", result.stderr)

    def test_options_an_engine_does_not_take_are_usage_errors(self):
        cases = [
            (
                ["--engine", "blocking", "--xform", "10001"],
                "--xform works with --engine actors, asyncio, lazy, threads, twisted",
            ),
            (["--engine", "select", "--ordered"], "--ordered works with --engine actors"),
            (["--engine", "twisted", "--supervise", "2"], "--supervise works with --engine actors"),
            (["--engine", "actors", "--supervise", "-1"], "must be 0 or more, got -1"),
            (["--engine", "twisted", "--transform", "shout"], "--transform works with --xform"),
            (["--engine", "select", "unix:/tmp/p.sock"], "endpoints work with --engine twisted"),
        ]
        for argv, words in cases:
            with self.subTest(argv=argv):
                status, err = usage_error(*argv, "10000")
                self.assertNotIn("Traceback", err)
                self.assertEqual(status, 2)
                self.assertIn(words, err.splitlines()[-1])

    def test_debug_shows_the_traceback_of_a_bug_that_cost_a_task(self):
        import logging

        from poetrynow.clients.task import PoemTask

        ours = logging.getLogger("poetrynow")
        self.addCleanup(setattr, ours, "handlers", list(ours.handlers))
        self.addCleanup(ours.setLevel, ours.level)

        def broken(task, data):
            raise RuntimeError("a bug in the engine")

        self.patch(PoemTask, "got", broken)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            import threading

            def serve_one():
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(b"a line of poetry\n")

            threading.Thread(target=serve_one, daemon=True).start()
            status, err = usage_error("--engine", "threads", "--debug", str(listener.getsockname()[1]))
        self.assertEqual(status, 1)
        self.assertIn("Traceback", err)
        self.assertIn("RuntimeError: a bug in the engine", err)
        self.assertIn("Task 1: failed to get poetry from 127.0.0.1:", err.splitlines()[-1])

    def test_refused_everywhere_is_exit_one_with_a_line_per_task(self):
        ports = [str(free_port()), str(free_port())]
        for engine in ["blocking"]:
            with self.subTest(engine=engine):
                result = run("get-poetry", "--engine", engine, *ports)
                self.assertEqual(result.returncode, 1)
                self.assertEqual(
                    result.stderr.splitlines(),
                    [
                        f"Task 1: failed to get poetry from 127.0.0.1:{ports[0]}: Connection refused",
                        f"Task 2: failed to get poetry from 127.0.0.1:{ports[1]}: Connection refused",
                    ],
                )
                self.assertRegex(result.stdout.splitlines()[-1], r"^Got 0 poems in ")

    def test_some_failed_is_exit_one_but_the_rest_arrive(self):
        dead = str(free_port())
        with servers(("relay", "--num-bytes", "500", "--delay", "0", "--quiet")) as (server,):
            result = run("get-poetry", "--engine", "select", dead, str(server.port))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.splitlines()), 1)
        self.assertIn("Task 2: 658 bytes of poetry", result.stdout)

    def test_silent_server_times_out(self):
        with socket.create_server(("127.0.0.1", 0)) as silent:
            port = str(silent.getsockname()[1])
            for engine in ["select"]:
                with self.subTest(engine=engine):
                    result = run("get-poetry", "--engine", engine, "--timeout", "0.2", port)
                    self.assertEqual(result.returncode, 1)
                    self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
                    self.assertIn(f"Task 1: failed to get poetry from 127.0.0.1:{port}: ", result.stderr)


class SlowPoetryCommandTests(SynchronousTestCase):
    def test_missing_poem_is_one_line_and_exit_two(self):
        result = run("slowpoetry", "/no/such/poem.txt")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.splitlines()), 1)
        self.assertIn("slowpoetry: error: no such poem: /no/such/poem.txt", result.stderr)

    def test_port_in_use_is_one_line_and_exit_one(self):
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = str(taken.getsockname()[1])
            result = run("slowpoetry", "kettle", "--port", port, "--iface", "127.0.0.1")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"slowpoetry: error: cannot listen on 127.0.0.1:{port}: Address already in use"],
        )

    def test_bad_numbers_are_usage_errors(self):
        for args in [("--num-bytes", "0"), ("--delay", "-1"), ("--delay", "soon"), ("--port", "70000")]:
            with self.subTest(args=args):
                result = run("slowpoetry", "kettle", *args)
                self.assertEqual(result.returncode, 2)
                self.assertNotIn("Traceback", result.stderr)

    def test_listening_line_then_a_line_per_client_and_chunk(self):
        server = Server("kettle", "--num-bytes", "400", "--delay", "0")
        try:
            self.assertEqual(server.first_line, f"Serving kettle on port {server.port}.\n")
            result = run("get-poetry", str(server.port))
            self.assertEqual(result.returncode, 0)
        finally:
            server.stop()
        rest = server.stdout.splitlines()
        self.assertRegex(rest[0], r"^Somebody at 127\.0\.0\.1:\d+ wants poetry!$")
        self.assertEqual(rest[1:], ["Sending 400 bytes", "Sending 236 bytes"])

    def test_ctrl_c_is_a_clean_exit_with_130_and_one_line(self):
        server = Server("kettle", "--quiet")
        status = server.stop(signal.SIGINT)
        self.assertEqual(status, 130)
        self.assertEqual(server.stderr, "slowpoetry: stopped by SIGINT: no client was being served\n")

    def test_client_hanging_up_mid_poem_costs_only_that_connection(self):
        server = Server("lighthouse", "--num-bytes", "10", "--delay", "0.001", "--quiet")
        try:
            with socket.create_connection(("127.0.0.1", server.port)) as rude:
                rude.recv(10)
            result = run("get-poetry", str(server.port))
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("got 3073 bytes", result.stdout)
        finally:
            self.assertEqual(server.stop(), 143)
        self.assertEqual(server.stderr, "slowpoetry: stopped by SIGTERM: no client was being served\n")


class BlockingServerDefenceTests(SynchronousTestCase):
    def test_three_hundred_clients_that_hang_up_do_not_cost_a_delay_each(self):
        # One chunk and one delay of 1 s per client: 300 of them would take 300 s if each
        # cost a delay; the real client after them would then time out (run's 60 s).
        server = Server("kettle", "--num-bytes", "1000", "--delay", "1", "--quiet")
        try:
            for _ in range(300):
                socket.create_connection(("127.0.0.1", server.port)).close()
            result = run("get-poetry", str(server.port), timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("got 636 bytes of poetry", result.stdout)
        finally:
            server.stop()


class PoetrynowCommandTests(SynchronousTestCase):
    def test_poems_lists_name_bytes_lines_title(self):
        result = run("poetrynow", "poems")
        self.assertEqual(result.returncode, 0)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["name", "bytes", "lines", "title"])
        self.assertRegex(result.stdout, r"lighthouse\s+3073\s+\d+\s+The Keeper of the Slow Light")
        self.assertEqual(len(lines), 5)

    def test_no_command_is_a_usage_error(self):
        self.assertEqual(run("poetrynow").returncode, 2)

    def test_unknown_demo_engine_is_a_usage_error(self):
        result = run("poetrynow", "demo", "--engines", "blocking,carrier-pigeon")
        self.assertEqual(result.returncode, 2)
        self.assertIn("unknown engine 'carrier-pigeon'", result.stderr)


class DemoTests(SynchronousTestCase):
    def test_demo_runs_every_engine_and_ranks_them(self):
        result = run("poetrynow", "demo", "--delay", "0.003", "--engines", "all", "--reads", timeout=180)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        for engine in ENGINES:
            self.assertIn(f"== get-poetry --engine {engine} ", out)
        self.assertIn("Task 1: get poetry from: 127.0.0.1:", out)  # --reads: the client's own lines
        self.assertIn("Task 1 finished", out)
        self.assertIn("Task 1: got 30 bytes of poetry from 127.0.0.1:", out)
        self.assertNotRegex(out, r"\[[#-]+\]")  # and no progress line in their place
        table = out[out.index("rank  ") :].splitlines()
        self.assertEqual(
            table[0].split(), ["rank", "engine", "measured", "ideal", "measured/ideal", "whole", "poems"]
        )
        rows = [line.split() for line in table[1 : 1 + len(ENGINES)]]
        self.assertEqual([row[0] for row in rows], [str(n) for n in range(1, len(ENGINES) + 1)])
        self.assertEqual(sorted(row[1] for row in rows), sorted(ENGINES))
        self.assertTrue(all(row[-1] == "3/3" for row in rows))
        times = [float(row[2]) for row in rows]
        self.assertEqual(times, sorted(times))
        self.assertEqual(rows[-1][1], "blocking")  # the one engine that waits on one server at a time
        self.assertRegex(out, r"blocking took \d+\.\d\d times as long as \w+")
        self.assertNotIn("Not ranked", out)

    def test_demo_takes_a_comma_list_of_engines(self):
        result = run("poetrynow", "demo", "--delay", "0", "--engines", "lazy,actors")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(re.findall(r"(?m)^(\w+) +\[#+\]", result.stdout), ["lazy", "actors"])
        twice = run("poetrynow", "demo", "--engines", "select,select")
        self.assertEqual(twice.returncode, 2)
        self.assertIn("engine 'select' named twice", twice.stderr)
        bad = run("poetrynow", "demo", "--engines", "select,fibers")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("unknown engine 'fibers'", bad.stderr)

    def test_the_default_demo_fits_one_screen(self):
        """Part 2's demo, as make demo runs it (a short delay): a line per engine, then the table,
        the sentence and the timeline, at most 40 rows of an 88-column terminal in all."""
        env = {**os.environ, "COLUMNS": "88", "LINES": "40"}
        result = run("poetrynow", "demo", "--delay", "0.01", "--no-timeline", env=env, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        rows = sum(max(1, -(-len(line) // 88)) for line in lines)  # a longer line takes more rows
        self.assertLessEqual(rows, 40, result.stdout)
        progress = [line for line in lines if re.match(r"^(blocking|select) +\[", line)]
        self.assertEqual(len(progress), 2, result.stdout)  # one line each, printed once (not a terminal)
        for line in progress:
            self.assertRegex(line, r"\[#{24}\]  4,367/4,367 bytes  3/3 poems")
        self.assertNotIn("Task 1: got", result.stdout)  # no line per read
        self.assertIn("rank  engine", result.stdout)
        self.assertRegex(result.stdout, r"blocking took \d+\.\d\d times as long as select")
        self.assertIn("select: ", result.stdout)  # the timeline's last panel
        self.assertNotIn("Traceback", result.stderr)
        self.assertNotRegex(result.stderr, r"not whole|got no poem|Not ranked")

    def test_demo_leaves_no_server_behind(self):
        # Port numbers printed by the demo are closed once it has exited.
        result = run("poetrynow", "demo", "--delay", "0", "--engines", "select", timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        ports = [
            int(line.rsplit(" ", 1)[1].rstrip("."))
            for line in result.stdout.splitlines()
            if line.startswith("Serving ")
        ]
        self.assertEqual(len(ports), 3)
        for port in ports:
            with socket.socket() as probe:
                self.assertNotEqual(probe.connect_ex(("127.0.0.1", port)), 0)


class RangeTests(SynchronousTestCase):
    """Numbers that parse but no platform can wait for are usage errors, not tracebacks later."""

    def test_seconds_past_a_week_are_refused_everywhere(self):
        from poetrynow import validate

        for text in ["1e10", "inf", "nan", "-0.5", "604801"]:
            with self.subTest(text=text):
                self.assertRaises(ValueError, validate.seconds, text)
        self.assertEqual(validate.seconds("604800"), 604800.0)
        for argv in (
            ["slowpoetry", "kettle", "--delay", "1e10"],
            ["get-poetry", "--timeout", "1e10", "10000"],
        ):
            with self.subTest(argv=argv):
                result = run(*argv)
                self.assertEqual(result.returncode, 2)
                self.assertIn("from 0 to 604800 (a week)", result.stderr.splitlines()[-1])
                self.assertNotIn("Traceback", result.stderr)
