"""``get-poetry --engine twisted`` (client 8.0) end to end against real server commands."""

import json
import re
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import Failed, Finished, Transformed, TransformFailed
from poetrynow.poems import load_poem
from tests.support import UTF8_POEM, Server, free_port, run, temp_dir, write_poem

ROOT = Path(__file__).resolve().parents[1]


class TwistedEngineTests(SynchronousTestCase):
    @classmethod
    def setUpClass(cls):
        cls.slow = Server("lighthouse", "--concurrent", "--num-bytes", "500", "--delay", "0.01", "--quiet")
        cls.fast = Server("caffe", "--quiet", command_name="fastpoetry")
        cls.xform = Server("--quiet", command_name="transformedpoetry")

    @classmethod
    def tearDownClass(cls):
        for server in (cls.slow, cls.fast, cls.xform):
            server.stop()

    def test_poems_arrive_byte_for_byte_and_a_refused_one_fails_alone(self):
        events = []
        dead = free_port()
        addresses = [
            Address("127.0.0.1", self.slow.port),
            Address("127.0.0.1", dead),
            Address("127.0.0.1", self.fast.port),
        ]
        run_engine("twisted", addresses, events.append, EngineOptions())
        finished = {e.task: e.poem for e in events if isinstance(e, Finished)}
        self.assertEqual(finished, {1: load_poem("lighthouse").data, 3: load_poem("caffe").data})
        self.assertEqual(
            [(e.task, e.reason) for e in events if isinstance(e, Failed)], [(2, "Connection refused")]
        )

    def test_runs_twice_in_one_process(self):
        for _ in range(2):
            events = []
            run_engine("twisted", [Address("127.0.0.1", self.fast.port)], events.append, EngineOptions())
            self.assertEqual(len([e for e in events if isinstance(e, Finished)]), 1)

    def test_xform_cummingsifies(self):
        events = []
        run_engine(
            "twisted",
            [Address("127.0.0.1", self.fast.port)],
            events.append,
            EngineOptions(xform=Address("127.0.0.1", self.xform.port)),
        )
        finished = [e for e in events if isinstance(e, Finished)]
        self.assertEqual(finished[0].text, load_poem("caffe").data.decode().lower())
        self.assertEqual(len([e for e in events if isinstance(e, Transformed)]), 1)

    def test_failing_transform_keeps_the_original_poem(self):
        result = run(
            "get-poetry",
            "--engine",
            "twisted",
            "--xform",
            str(self.xform.port),
            "--transform",
            "explode",
            str(self.fast.port),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            result.stderr.splitlines(),
            ["Explode failed! Task 1 keeps the original poem: the transform server closed without an answer"],
        )
        self.assertIn(load_poem("caffe").data.decode().rstrip("\n"), result.stdout)

    def test_transform_server_down_keeps_the_original_poem(self):
        events = []
        run_engine(
            "twisted",
            [Address("127.0.0.1", self.fast.port)],
            events.append,
            EngineOptions(xform=Address("127.0.0.1", free_port())),
        )
        self.assertEqual([e.reason for e in events if isinstance(e, TransformFailed)], ["Connection refused"])
        self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [load_poem("caffe").data])

    def test_command_line_output(self):
        dead = str(free_port())
        result = run(
            "get-poetry", "--engine", "twisted", "--xform", str(self.xform.port), str(self.slow.port), dead
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"The poem download failed: Connection refused (task 2, 127.0.0.1:{dead})"],
        )
        lines = result.stdout.splitlines()
        chunk = re.compile(rf"^Task 1: got \d+ bytes of poetry from 127\.0\.0\.1:{self.slow.port}$")
        self.assertTrue(chunk.match(lines[0]), lines[0])
        self.assertIn("Task 1 finished", lines)
        self.assertIn("the keeper of the slow light", lines)  # the poem, cummingsified
        self.assertEqual(lines[-2], "Task 1: 3073 bytes of poetry")
        self.assertRegex(lines[-1], r"^Got 1 poem in 0:00:\d\d\.\d{6}$")

    def test_no_poems(self):
        result = run("get-poetry", "--engine", "twisted", "--no-poems", str(self.fast.port))
        self.assertEqual(result.returncode, 0)
        self.assertNotIn("Al caffè", result.stdout)

    def test_split_utf8_arrives_intact(self):
        path = write_poem(temp_dir(self), "utf8.txt", UTF8_POEM)
        server = Server(path, "--concurrent", "--num-bytes", "1", "--delay", "0.001", "--quiet")
        try:
            result = run("get-poetry", "--engine", "twisted", "--json", str(server.port))
        finally:
            server.stop()
        finished = [json.loads(line) for line in result.stdout.splitlines() if '"finished"' in line]
        self.assertEqual(finished[0]["poem"].encode(), UTF8_POEM)

    def test_xform_with_another_engine_is_a_usage_error(self):
        result = run("get-poetry", "--engine", "blocking", "--xform", "10001", "10000")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--xform works with --engine actors, asyncio, lazy, threads, twisted", result.stderr)

    def test_asyncio_example_awaits_get_poetry(self):
        import subprocess

        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "asyncio_get_poetry.py")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^asyncio got 610 bytes of poetry from 127\.0\.0\.1:\d+\n")
        self.assertIn("Al caffè della stazione", result.stdout)
