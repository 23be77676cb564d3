"""twistd: the four plugins and the two tac files, run as real processes (Part 16).

Over 300 lines because twistd's life (plugin listing, daemon, foreground, start-up
failures, tac files) is one subject, and each test starts real processes that share
the helpers at the top.

Each test starts ``twistd`` on port 0, reads the port from the log, fetches over
127.0.0.1 with the project's own Twisted clients, then stops it with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from twisted.internet import defer

from poetrynow.clients.get_poetry import TransformProxy, get_poetry
from poetrynow.poems import load_poem
from poetrynow.transforms import cummingsify
from tests.support import BIN, Child, Editions, plain_twin, temp_dir
from tests.time_limit import SynchronousTestCase, TestCase

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TWISTD = (
    [str(BIN / "twistd")]
    if (BIN / "twistd").exists()
    else [
        sys.executable,
        "-c",
        "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
    ]
)
SERVING = re.compile(r"(?:Serving|Proxying) .* on port (\d+)\.$")
FACTORY_STARTED = re.compile(r"PoetryFactory starting on (\d+)$")
PLUGINS = ["fastpoetry", "slowpoetry", "transformedpoetry", "poetryproxy"]


def twistd(*args: str, cwd: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        TWISTD + list(args),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


class Foreground(Child):
    """``twistd -n ...`` as a child process whose log lines (stdout) a test can wait for."""

    def __init__(self, case, *args: str, env: dict | None = None):
        self.cwd = temp_dir(case)
        super().__init__(TWISTD + ["-n", "--pidfile", "twistd.pid"] + list(args), cwd=self.cwd, env=env)
        case.addCleanup(self.stop)
        self.lines: list[str] = []

    def wait_for(self, pattern: re.Pattern) -> re.Match:
        """The first log line from here on that matches; AssertionError if twistd ends, or says
        nothing that matches within the deadline."""
        try:
            taken = self.out.until(lambda line: pattern.search(line) is not None)
        except AssertionError as problem:
            raise AssertionError(f"twistd never logged {pattern.pattern!r}: {problem}") from None
        self.lines.extend(line.rstrip("\n") for line in taken)
        found = pattern.search(self.lines[-1])
        assert found is not None
        return found

    def stop(self, sig: int = signal.SIGTERM) -> str:  # type: ignore[override]
        """SIGTERM; return the whole log."""
        seen = len(self.stdout)
        super().stop(sig)
        self.lines.extend(self.stdout[seen:].splitlines())
        return "\n".join(self.lines)


def env_with(**overrides: str) -> dict:
    env = dict(os.environ)
    env.update(overrides)
    return env


class PluginListingTests(SynchronousTestCase):
    def test_twistd_lists_the_four_plugins_with_a_line_each(self):
        result = twistd("--help", cwd=temp_dir(self))
        self.assertEqual(result.returncode, 0, result.stderr)
        for name in PLUGINS:
            line = [row for row in result.stdout.splitlines() if row.split()[:1] == [name]]
            self.assertEqual(len(line), 1, result.stdout)
            self.assertIn("poetrynow: ", line[0])

    def test_each_plugin_takes_its_commands_options(self):
        expected = {
            "fastpoetry": ["--poem", "--quiet"],
            "slowpoetry": ["--poem", "--num-bytes", "--delay", "--quiet"],
            "transformedpoetry": [
                "--max-length",
                "--timeout",
                "--quiet",
                "--cost",
                "--cost-kind",
                "--cost-in",
            ]
            + ["--workers", "--work-log"],
            "poetryproxy": ["--timeout", "--quiet", "[host:]port"],
        }
        for name, options in expected.items():
            result = twistd(name, "--help", cwd=temp_dir(self))
            self.assertEqual(result.returncode, 0, result.stderr)
            for option in [*options, "--port", "--iface", "--listen"]:
                self.assertIn(option, result.stdout, name)
            # No short option a reader could take for twistd's own -n (--nodaemon) or -d (--rundir).
            self.assertNotRegex(result.stdout, r"(?m)^\s+-[nd],", name)

    def test_bad_options_are_usage_errors(self):
        for args, words in [
            (["fastpoetry"], "--poem is required"),
            (["slowpoetry", "--poem", "kettle", "--delay", "-1"], "must be a number of seconds from 0"),
            (["poetryproxy"], "give the [host:]port"),
            (["poetryproxy", "here:there"], "bad address 'here:there'"),
            (["fastpoetry", "--poem", "kettle", "--listen", "tcp:0", "--port", "7"], "not both"),
            (["fastpoetry", "--poem", "kettle", "--listen", "pigeon:7"], "Unknown endpoint type"),
        ]:
            result = twistd("-n", *args, cwd=temp_dir(self))
            self.assertEqual(result.returncode, 1, args)
            self.assertIn(words, result.stdout.splitlines()[-1])
            self.assertNotIn("Traceback", result.stdout + result.stderr)


class FastPoetryDaemonTests(Editions, TestCase):
    """The issue's round trip: a real daemon, its pid file, its log file."""

    def setUp(self):
        self.dir = temp_dir(self)
        self.pidfile = os.path.join(self.dir, "fast.pid")
        self.logfile = os.path.join(self.dir, "fast.log")

    def log(self) -> str:
        with open(self.logfile, encoding="utf-8") as f:
            return f.read()

    def wait_until_stopped(self, pid: int) -> None:
        """The daemon is not our child: poll until it and its pid file are gone."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        self.fail("the daemon did not stop within 30 s of SIGTERM")

    @defer.inlineCallbacks
    def test_daemon_serves_logs_and_stops_on_sigterm(self):
        started = twistd(
            "--pidfile",
            self.pidfile,
            "--logfile",
            self.logfile,
            "fastpoetry",
            *self.plugin_edition(),
            "--port",
            "0",
            "--poem",
            "kettle",
            cwd=self.dir,
        )
        self.assertEqual(started.returncode, 0, started.stderr)  # the parent returns once the child started
        with open(self.pidfile) as f:
            pid = int(f.read())
        self.addCleanup(lambda: os.path.exists(self.pidfile) and os.kill(pid, signal.SIGKILL))
        port = int(re.search(r"Serving kettle on port (\d+)\.", self.log()).group(1))

        poem = yield get_poetry("127.0.0.1", port, timeout=30)
        self.assertEqual(poem, load_poem("kettle").data)

        os.kill(pid, signal.SIGTERM)
        self.wait_until_stopped(pid)
        self.assertFalse(os.path.exists(self.pidfile))
        log = self.log()
        for line in [
            "twistd ",
            " starting up.",
            f"Serving kettle on port {port}.",
            f"sending {len(poem)} bytes of poetry to 127.0.0.1:",
            "Received SIGTERM, shutting down.",
            f"No longer serving kettle on port {port}.",
            "Server Shut Down.",
        ]:
            self.assertIn(line, log)
        self.assertLess(log.index("starting up."), log.index("sending "))
        self.assertLess(log.index("sending "), log.index("Server Shut Down."))

    def test_a_daemon_without_its_poem_says_why_in_one_line_before_it_forks(self):
        result = twistd(
            "--pidfile",
            self.pidfile,
            "--logfile",
            self.logfile,
            "fastpoetry",
            "--poem",
            "no-such-poem",
            cwd=self.dir,
        )
        self.assertEqual(result.returncode, 1)
        # The same line as in the foreground, not "An error has occurred: b'poetrynow.poems.Poem...'".
        self.assertEqual(
            result.stderr.splitlines(),
            ["twistd: error: no such poem: no-such-poem (bundled poems: caffe, kettle, lighthouse, relay)"],
        )
        self.assertFalse(os.path.exists(self.pidfile))
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_a_daemon_whose_port_is_taken_says_why_in_one_line(self):
        import socket

        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            result = twistd(
                "--pidfile", self.pidfile, "--logfile", self.logfile,
                "fastpoetry", "--poem", "kettle", "--port", str(port), cwd=self.dir,
            )  # fmt: skip
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"twistd: error: cannot listen on localhost:{port}: Address already in use"],
        )
        self.assertFalse(os.path.exists(self.pidfile))


class ForegroundStartupFailureTests(SynchronousTestCase):
    def test_missing_poem_is_one_line_on_stderr(self):
        result = twistd(
            "-n", "--pidfile", "twistd.pid", "fastpoetry", "--poem", "no-such-poem", cwd=temp_dir(self)
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            ["twistd: error: no such poem: no-such-poem (bundled poems: caffe, kettle, lighthouse, relay)"],
        )
        self.assertNotIn("Traceback", result.stdout)

    def test_port_in_use_is_one_line(self):
        import socket

        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            result = twistd(
                "-n",
                "--pidfile",
                "twistd.pid",
                "slowpoetry",
                "--poem",
                "kettle",
                "--port",
                str(port),
                cwd=temp_dir(self),
            )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"twistd: error: cannot listen on localhost:{port}: Address already in use"],
        )


class ForegroundPluginTests(Editions, TestCase):
    """``twistd -n`` round trips for the other three plugins."""

    @defer.inlineCallbacks
    def test_slowpoetry(self):
        server = Foreground(
            self,
            "slowpoetry",
            *self.plugin_edition(),
            "--poem",
            "relay",
            "--num-bytes",
            "100",
            "--delay",
            "0.01",
        )
        port = int(server.wait_for(SERVING).group(1))
        poem = yield get_poetry("127.0.0.1", port, timeout=30)
        self.assertEqual(poem, load_poem("relay").data)
        log = server.stop()
        self.assertEqual(server.process.returncode, -signal.SIGTERM)  # twistd ends by the signal it got
        self.assertIn("Somebody at 127.0.0.1:", log)
        self.assertEqual(log.count("Sending 100 bytes to 127.0.0.1:"), len(poem) // 100)
        self.assertIn("Server Shut Down.", log)

    @defer.inlineCallbacks
    def test_poetryproxy_in_front_of_a_slow_server(self):
        upstream = self.server("kettle", "--concurrent", "--num-bytes", "200", "--delay", "0.01", "--quiet")
        self.addCleanup(upstream.stop)
        proxy = Foreground(
            self, "poetryproxy", *self.plugin_edition(), "--port", "0", f"127.0.0.1:{upstream.port}"
        )
        port = int(proxy.wait_for(SERVING).group(1))
        first = yield get_poetry("127.0.0.1", port, timeout=30)
        second = yield get_poetry("127.0.0.1", port, timeout=30)
        self.assertEqual(first, load_poem("kettle").data)
        self.assertEqual(second, first)
        log = proxy.stop()
        self.assertIn(f"Proxying 127.0.0.1:{upstream.port} on port {port}.", log)
        self.assertLess(log.index("Fetching poem from server."), log.index("Using cached poem."))
        self.assertEqual(log.count("Fetching poem from server."), 1)

    @defer.inlineCallbacks
    def test_transformedpoetry_answers_cummingsify(self):
        server = Foreground(self, "transformedpoetry", "--port", "0")
        port = int(server.wait_for(SERVING).group(1))
        poem = load_poem("caffe").data
        answer = yield TransformProxy("127.0.0.1", port).xform("cummingsify", poem)
        self.assertEqual(answer.decode("utf-8"), cummingsify(poem.decode("utf-8")))
        self.assertNotEqual(answer, poem)
        log = server.stop()
        self.assertIn(f"cummingsify of {len(poem)} bytes for 127.0.0.1:", log)


PlainFastPoetryDaemonTests = plain_twin(FastPoetryDaemonTests)
PlainForegroundPluginTests = plain_twin(ForegroundPluginTests)


class TacFileTests(TestCase):
    @defer.inlineCallbacks
    def test_fastpoetry_tac(self):
        server = Foreground(
            self,
            "-y",
            str(EXAMPLES / "fastpoetry.tac"),
            env=env_with(FASTPOETRY_PORT="0", FASTPOETRY_POEM="caffe"),
        )
        port = int(server.wait_for(FACTORY_STARTED).group(1))
        poem = yield get_poetry("127.0.0.1", port, timeout=30)
        self.assertEqual(poem, load_poem("caffe").data)
        log = server.stop()
        self.assertIn(f"sending {len(poem)} bytes of poetry to 127.0.0.1:", log)
        self.assertIn("Server Shut Down.", log)

    @defer.inlineCallbacks
    def test_twopoems_tac_serves_each_poem_on_its_own_port(self):
        server = Foreground(
            self,
            "-y",
            str(EXAMPLES / "twopoems.tac"),
            env=env_with(
                TWOPOEMS_PORT_1="0",
                TWOPOEMS_PORT_2="0",
                TWOPOEMS_POEM_1="kettle",
                TWOPOEMS_POEM_2="lighthouse",
            ),
        )
        first = int(server.wait_for(FACTORY_STARTED).group(1))
        second = int(server.wait_for(FACTORY_STARTED).group(1))
        self.assertNotEqual(first, second)
        poems = yield defer.gatherResults(
            [get_poetry("127.0.0.1", first, timeout=30), get_poetry("127.0.0.1", second, timeout=30)]
        )
        self.assertEqual(poems, [load_poem("kettle").data, load_poem("lighthouse").data])
        log = server.stop()
        self.assertIn("Loaded kettle (636 bytes).", log)
        self.assertIn("Loaded lighthouse (3073 bytes).", log)

    def test_tac_files_are_plain_python_that_builds_without_running(self):
        # Part 16: "python fastpoetry.tac" does nothing; it only builds the application.
        from twisted.application.service import IServiceCollection

        for name, count in [("fastpoetry.tac", 1), ("twopoems.tac", 2)]:
            namespace: dict = {}
            exec(compile((EXAMPLES / name).read_text(), name, "exec"), namespace)
            top = IServiceCollection(namespace["application"])
            pairs = list(top)
            self.assertEqual(len(pairs), count)
            for pair in pairs:
                self.assertEqual(len(list(pair)), 2)  # a PoetryService and its TCPServer
                self.assertFalse(pair.running)
