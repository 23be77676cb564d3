"""``transformedpoetry --cost``: the real command, its work in each place, over real sockets.

Each test runs the command as a subprocess on port 0, and checks the answers and
the work log, never how long anything took.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from contextlib import redirect_stderr
from unittest import SkipTest

from twisted.internet import defer
from twisted.python import usage

from poetrynow.cli import transformedpoetry
from poetrynow.clients.get_poetry import TransformProxy
from poetrynow.netstring import encode
from poetrynow.plugins import transformedpoetry as plugin
from poetrynow.servers.transform.costs import KINDS, Cost
from poetrynow.servers.transform.workers import InProcesses, InThreads
from poetrynow.servers.transform.worklog import read_work_log
from poetrynow.transforms import cummingsify
from tests.support import UTF8_POEM, Server, connect, exchange, run, temp_dir
from tests.test_twistd import SERVING, Foreground, twistd
from tests.time_limit import SynchronousTestCase, TestCase

#: Seconds each transform costs: enough to be work, little enough to keep the tests quick.
COST = "0.02"
REQUEST = encode(b"cummingsify." + UTF8_POEM)
ANSWER = encode(cummingsify(UTF8_POEM.decode()).encode())


def at_once(port: int, requests: list[bytes]) -> list[tuple[bytes, str]]:
    """Each request on its own connection, all sent at once; each one's answer and how it ended."""
    answers: list[tuple[bytes, str]] = [(b"", "not asked")] * len(requests)

    def ask(n: int) -> None:
        answers[n] = exchange(port, requests[n])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


class PlacementTests(SynchronousTestCase):
    """Each place the work can run, with each kind of cost: right answers, and the right workers."""

    def serve(self, place: str, kind: str) -> tuple[Server, str]:
        log = os.path.join(temp_dir(self), "work.jsonl")
        args = ["--cost", COST, "--cost-kind", kind, "--cost-in", place, "--workers", "2", "--work-log", log]
        server = Server(*args, "--quiet", command_name="transformedpoetry")
        self.addCleanup(server.stop)
        return server, log

    def answered(self, place: str) -> list[tuple[Server, list[dict]]]:
        """Two requests at once to a server of each kind: both answered; the work log of each."""
        served = []
        for kind in KINDS:
            server, log = self.serve(place, kind)
            self.assertEqual(at_once(server.port, [REQUEST, REQUEST]), [(ANSWER, "closed")] * 2, kind)
            work = read_work_log(log)  # each line is out before its answer
            self.assertEqual(
                [(w["transform"], w["bytes"]) for w in work], [("cummingsify", len(UTF8_POEM))] * 2
            )
            self.assertTrue(all(w["began"] <= w["ended"] for w in work))
            served.append((server, work))
        return served

    def refuses_one_and_goes_on(self, server: Server) -> None:
        """A transform that fails in the worker costs its request, not the server."""
        self.assertEqual(exchange(server.port, encode(b"explode.poem")), (b"", "closed"))
        [line] = server.out.until(lambda line: line.startswith("Refused"))
        self.assertIn("explode failed: this transform always explodes", line)
        self.assertEqual(exchange(server.port, REQUEST), (ANSWER, "closed"))

    def test_in_the_loop_the_main_thread_does_it(self):
        for server, work in self.answered("loop"):
            self.assertEqual({(w["worker"], w["pid"]) for w in work}, {("main thread", server.process.pid)})

    def test_in_threads_a_pool_thread_does_it(self):
        served = self.answered("thread")
        for server, work in served:
            self.assertEqual({w["pid"] for w in work}, {server.process.pid})
            self.assertLessEqual({w["worker"] for w in work}, {"thread 1", "thread 2"})
        self.refuses_one_and_goes_on(served[0][0])

    def test_in_processes_another_process_does_it_even_with_a_poem_larger_than_a_pipe(self):
        served = self.answered("process")
        for server, work in served:
            self.assertNotIn(server.process.pid, {w["pid"] for w in work})
            self.assertLessEqual({w["worker"] for w in work}, {"process 1", "process 2"})
        server = served[1][0]
        self.refuses_one_and_goes_on(server)
        big = ("Ça va, José? Déjà vu.\n" * 13000).encode()  # over 300 KB, a pipe holds 64 KiB
        self.assertGreater(len(big), 300_000)
        answer, ended = exchange(server.port, encode(b"cummingsify." + big))
        self.assertEqual(ended, "closed")
        self.assertEqual(answer, encode(cummingsify(big.decode()).encode()))


class OptionTests(SynchronousTestCase):
    def usage_error(self, *argv: str) -> str:
        err = io.StringIO()
        with redirect_stderr(err), self.assertRaises(SystemExit) as stop:
            transformedpoetry.parser().parse_args(list(argv))
        self.assertEqual(stop.exception.code, 2)
        return err.getvalue().strip().splitlines()[-1]

    def test_bad_options_are_one_line_usage_errors(self):
        for argv, words in [
            (["--cost", "-1"], "must be a number of seconds from 0 to 604800"),
            (["--cost", "1e9"], "must be a number of seconds from 0 to 604800"),
            (["--cost", "soon"], "expected a number of seconds"),
            (["--cost-kind", "nap"], "invalid choice: 'nap'"),
            (["--cost-in", "cloud"], "invalid choice: 'cloud'"),
            (["--workers", "0"], "must be at least 1"),
            (["--queue", "0"], "must be at least 1"),
            (["--work-log", "/no/such/folder/work.jsonl"], "no such folder"),
        ]:
            with self.subTest(argv):
                self.assertIn(words, self.usage_error(*argv))

    def test_the_command_says_so_without_a_traceback(self):
        result = run("transformedpoetry", "--cost-in", "process", "--workers", "-2")
        self.assertEqual(result.returncode, 2)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(
            result.stderr.splitlines()[-1],
            "transformedpoetry: error: argument --workers: must be at least 1, got -2",
        )

    def test_the_defaults_cost_nothing_in_the_loop(self):
        args = transformedpoetry.parser().parse_args([])
        self.assertEqual(
            (args.cost, args.cost_kind, args.cost_in, args.workers, args.queue),
            (0.0, "wait", "loop", None, None),
        )


class PluginTests(SynchronousTestCase):
    def test_the_plugin_takes_the_command_s_cost_options(self):
        log = os.path.join(temp_dir(self), "work.jsonl")
        options = plugin.options()
        options.parseOptions(
            [
                "--cost",
                "0.5",
                "--cost-kind",
                "cpu",
                "--cost-in",
                "thread",
                "--workers",
                "3",
                "--queue",
                "5",
                "--work-log",
                log,
            ]
        )
        held = plugin.makeService(options).held
        self.assertEqual(held.cost, Cost(0.5, "cpu"))
        self.assertIsInstance(held.workers, InThreads)
        self.assertEqual((held.workers.workers, held.workers.queue), (3, 5))
        self.assertEqual(held.work_log.path, log)
        options = plugin.options()
        options.parseOptions(["--cost-in", "process", "--workers", "2"])
        workers = plugin.makeService(options).held.workers
        self.assertIsInstance(workers, InProcesses)
        self.assertEqual(workers.queue, 8)  # four a worker, unless told

    def test_bad_cost_options_are_usage_errors(self):
        for argv in (
            ["--cost", "-1"],
            ["--cost-kind", "nap"],
            ["--cost-in", "cloud"],
            ["--workers", "0"],
            ["--queue", "0"],
        ):
            with self.subTest(argv), self.assertRaises(usage.UsageError):
                plugin.options().parseOptions(argv)


class TwistdTests(TestCase):
    @defer.inlineCallbacks
    def test_twistd_runs_the_work_in_processes(self):
        # twistd installs its own SIGCHLD handler: the pool's workers must still come and go.
        server = Foreground(
            self, "transformedpoetry", "--port", "0", "--cost", COST, "--cost-in", "process", "--workers", "1"
        )
        port = int(server.wait_for(SERVING).group(1))
        answer = yield TransformProxy("127.0.0.1", port).xform("cummingsify", UTF8_POEM)
        self.assertEqual(answer, cummingsify(UTF8_POEM.decode()).encode())
        log = server.stop()
        self.assertIn(f"cummingsify of {len(UTF8_POEM)} bytes for 127.0.0.1:", log)

    def test_a_work_log_that_cannot_be_opened_is_one_line_before_anything_listens(self):
        folder = temp_dir(self)
        link = os.path.join(folder, "work.jsonl")
        # A link to a folder that is not there: it passes the option's check, and opens nothing.
        os.symlink(os.path.join(folder, "gone", "work.jsonl"), link)
        result = twistd("-n", "--pidfile", "twistd.pid", "transformedpoetry", "--work-log", link, cwd=folder)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"twistd: error: cannot write the work log {link}: No such file or directory"],
        )
        self.assertNotIn("Traceback", result.stdout)
        self.assertNotIn("Serving", result.stdout)


class WorkInFlightTests(SynchronousTestCase):
    """The real command with work held when more comes, and when it is stopped."""

    def test_a_full_queue_and_a_ctrl_c_are_a_line_per_request_without_a_traceback(self):
        args = ["--cost", "3600", "--cost-in", "process", "--workers", "1", "--queue", "1"]
        server = Server(*args, command_name="transformedpoetry")
        self.addCleanup(server.stop, signal.SIGKILL)
        clients = [connect(server.port, REQUEST) for _ in range(2)]  # one is held an hour, one refused
        for client in clients:
            self.addCleanup(client.close)
        [busy] = server.out.until(lambda line: "busy" in line)
        self.assertRegex(busy, r"^Refused 127\.0\.0\.1:\d+: busy: 1 transform waiting\n$")
        self.assertEqual(server.stop(signal.SIGINT), 130, server.stderr)
        self.assertRegex(
            server.stdout, r"Refused 127\.0\.0\.1:\d+: the server stopped before the work was done"
        )
        self.assertNotIn("Traceback", server.stdout + server.stderr)
        self.assertEqual(server.stderr, "transformedpoetry: stopped by SIGINT: no client was cut short\n")

    def test_a_full_disk_costs_the_work_log_one_line_not_the_poems(self):
        if not os.path.exists("/dev/full"):
            raise SkipTest("no /dev/full here")
        server = Server("--work-log", "/dev/full", "--quiet", command_name="transformedpoetry")
        self.addCleanup(server.stop, signal.SIGKILL)
        for _ in range(2):
            self.assertEqual(exchange(server.port, REQUEST), (ANSWER, "closed"))
        self.assertEqual(server.stop(signal.SIGTERM), 143, server.stderr)
        self.assertEqual(
            server.stdout.splitlines()[:1],
            ["Cannot write the work log /dev/full: No space left on device; it is off from here on"],
        )
        self.assertNotIn("Traceback", server.stdout + server.stderr)
