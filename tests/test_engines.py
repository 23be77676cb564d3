"""The blocking and select engines end to end, against real ``slowpoetry`` subprocesses."""

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import Failed, Finished
from poetrynow.poems import load_poem
from tests.support import UTF8_POEM, free_port, run, servers, temp_dir, write_poem

ENGINES = ["blocking", "select"]


def collect(engine, addresses, **options):
    events = []
    run_engine(engine, addresses, events.append, EngineOptions(**options))
    return events


class EngineTests(SynchronousTestCase):
    def test_both_engines_fetch_every_poem_byte_for_byte(self):
        specs = [
            ("lighthouse", "--num-bytes", "300", "--delay", "0.01", "--quiet"),
            ("kettle", "--num-bytes", "100", "--delay", "0.01", "--quiet"),
            ("caffe", "--num-bytes", "100", "--delay", "0.01", "--quiet"),
        ]
        with servers(*specs) as running:
            addresses = [Address("127.0.0.1", s.port) for s in running]
            for engine in ENGINES:
                with self.subTest(engine=engine):
                    finished = [e for e in collect(engine, addresses) if isinstance(e, Finished)]
                    self.assertEqual(sorted(e.task for e in finished), [1, 2, 3])
                    for e in finished:
                        self.assertEqual(e.poem, load_poem(specs[e.task - 1][0]).data)

    def test_split_multibyte_characters_arrive_intact(self):
        # One byte per send: every non-ASCII character is split across reads.
        path = write_poem(temp_dir(self), "utf8.txt", UTF8_POEM)
        with servers(
            (path, "--num-bytes", "1", "--delay", "0.002", "--quiet"),
            (path, "--num-bytes", "1", "--delay", "0.002", "--quiet"),
        ) as running:
            for engine, server in zip(ENGINES, running):
                with self.subTest(engine=engine):
                    result = run("get-poetry", "--engine", engine, "--json", str(server.port))
                    self.assertEqual(result.returncode, 0, result.stderr)
                    records = [json.loads(line) for line in result.stdout.splitlines()]
                    finished = [r for r in records if r["event"] == "finished"]
                    self.assertEqual(finished[0]["poem"].encode("utf-8"), UTF8_POEM)
                    self.assertEqual(finished[0]["bytes"], len(UTF8_POEM))
                    received = [r for r in records if r["event"] == "received"]
                    self.assertEqual(sum(r["bytes"] for r in received), len(UTF8_POEM))

    def test_a_refused_connection_among_good_ones(self):
        with servers(
            ("kettle", "--num-bytes", "200", "--delay", "0.005", "--quiet"),
            ("relay", "--num-bytes", "200", "--delay", "0.005", "--quiet"),
        ) as running:
            dead = free_port()
            addresses = [
                Address("127.0.0.1", running[0].port),
                Address("127.0.0.1", dead),
                Address("127.0.0.1", running[1].port),
            ]
            for engine in ENGINES:
                with self.subTest(engine=engine):
                    events = collect(engine, addresses)
                    failed = [e for e in events if isinstance(e, Failed)]
                    self.assertEqual([(e.task, e.reason) for e in failed], [(2, "Connection refused")])
                    finished = {e.task: e.poem for e in events if isinstance(e, Finished)}
                    self.assertEqual(finished, {1: load_poem("kettle").data, 3: load_poem("relay").data})


class CommandLineOutputTests(SynchronousTestCase):
    """The lines ``get-poetry`` prints, engine by engine, as Part 2 shows them."""

    def test_blocking_lines(self):
        with servers(
            ("kettle", "--num-bytes", "100", "--delay", "0.005", "--quiet"),
            ("relay", "--num-bytes", "100", "--delay", "0.005", "--quiet"),
        ) as running:
            ports = [str(s.port) for s in running]
            result = run("get-poetry", *ports)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], f"Task 1: get poetry from: 127.0.0.1:{ports[0]}")
        self.assertRegex(
            lines[1], rf"^Task 1: got 636 bytes of poetry from 127\.0\.0\.1:{ports[0]} in 0:00:\d\d\.\d{{6}}$"
        )
        self.assertEqual(lines[2], f"Task 2: get poetry from: 127.0.0.1:{ports[1]}")
        self.assertRegex(
            lines[3], rf"^Task 2: got 658 bytes of poetry from 127\.0\.0\.1:{ports[1]} in 0:00:\d\d\.\d{{6}}$"
        )
        self.assertRegex(lines[4], r"^Got 2 poems in 0:00:\d\d\.\d{6}$")
        self.assertEqual(len(lines), 5)
        self.assertEqual(result.stderr, "")

    def test_select_lines(self):
        with servers(
            ("lighthouse", "--num-bytes", "300", "--delay", "0.01", "--quiet"),
            ("kettle", "--num-bytes", "100", "--delay", "0.01", "--quiet"),
        ) as running:
            ports = [str(s.port) for s in running]
            result = run("get-poetry", "--engine", "select", *ports)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        chunk = re.compile(r"^Task ([12]): got (\d+) bytes of poetry from 127\.0\.0\.1:(\d+)$")
        body = lines[:-3]
        totals = {1: 0, 2: 0}
        for line in body:
            match = chunk.match(line)
            if match:
                task = int(match[1])
                self.assertEqual(match[3], ports[task - 1])
                totals[task] += int(match[2])
            else:
                self.assertIn(line, ["Task 1 finished", "Task 2 finished"])
        self.assertEqual(totals, {1: 3073, 2: 636})
        # The two downloads interleave: the short poem finishes before the long one.
        self.assertLess(body.index("Task 2 finished"), body.index("Task 1 finished"))
        self.assertEqual(lines[-3:-1], ["Task 1: 3073 bytes of poetry", "Task 2: 636 bytes of poetry"])
        self.assertRegex(lines[-1], r"^Got 2 poems in 0:00:\d\d\.\d{6}$")
