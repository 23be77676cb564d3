"""``transformedpoetry --cost``: the real command, its work in each place, over real sockets.

Each test runs the command as a subprocess on port 0, and checks the answers and
the work log, never how long anything took.
"""

from __future__ import annotations

import io
import os
import threading
from contextlib import redirect_stderr

from twisted.internet import defer
from twisted.python import usage

from poetrynow.cli import transformedpoetry
from poetrynow.clients.get_poetry import TransformProxy
from poetrynow.netstring import encode
from poetrynow.plugins import transformedpoetry as plugin
from poetrynow.servers.costs import KINDS, Cost
from poetrynow.servers.workers import InProcesses, InThreads
from poetrynow.servers.worklog import read_work_log
from poetrynow.transforms import cummingsify
from tests.support import UTF8_POEM, Server, exchange, run, temp_dir
from tests.test_twistd import SERVING, Foreground
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
        self.assertEqual((args.cost, args.cost_kind, args.cost_in, args.workers), (0.0, "wait", "loop", None))


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
                "--work-log",
                log,
            ]
        )
        held = plugin.makeService(options).held
        self.assertEqual(held.cost, Cost(0.5, "cpu"))
        self.assertIsInstance(held.workers, InThreads)
        self.assertEqual(held.workers.workers, 3)
        self.assertEqual(held.work_log.path, log)
        options = plugin.options()
        options.parseOptions(["--cost-in", "process"])
        self.assertIsInstance(plugin.makeService(options).held.workers, InProcesses)

    def test_bad_cost_options_are_usage_errors(self):
        for argv in (["--cost", "-1"], ["--cost-kind", "nap"], ["--cost-in", "cloud"], ["--workers", "0"]):
            with self.subTest(argv), self.assertRaises(usage.UsageError):
                plugin.options().parseOptions(argv)


class TwistdTests(TestCase):
    @defer.inlineCallbacks
    def test_twistd_runs_the_work_in_processes(self):
        # twistd installs its own SIGCHLD handler: the pool's workers must still come and go.
        server = Foreground(self, "transformedpoetry", "--port", "0", "--cost", COST, "--cost-in", "process")
        port = int(server.wait_for(SERVING).group(1))
        answer = yield TransformProxy("127.0.0.1", port).xform("cummingsify", UTF8_POEM)
        self.assertEqual(answer, cummingsify(UTF8_POEM.decode()).encode())
        log = server.stop()
        self.assertIn(f"cummingsify of {len(UTF8_POEM)} bytes for 127.0.0.1:", log)
