"""The threads, asyncio, actors and lazy engines end to end on real sockets (Parts 1, 20, 21)."""

from __future__ import annotations

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import (
    Connected,
    Failed,
    Finished,
    Received,
    Restarted,
    Started,
    Transformed,
    TransformFailed,
)
from poetrynow.poems import load_poem
from tests.support import UTF8_POEM, ResettingServer, Server, free_port, run, write_poem

NEW_ENGINES = ["threads", "asyncio", "actors", "lazy"]


def collect(engine: str, addresses, **options):
    events: list = []
    run_engine(engine, addresses, events.append, EngineOptions(**options))
    return events


def local(port: int) -> Address:
    return Address("127.0.0.1", port)


class ServersForEveryTest(SynchronousTestCase):
    """Concurrent servers shared by the tests of a class: a slow one, a fast one, transforms."""

    @classmethod
    def setUpClass(cls):
        cls.dir = __import__("tempfile").mkdtemp(prefix="poetrynow-test-")
        utf8 = write_poem(cls.dir, "utf8.txt", UTF8_POEM)
        cls.slow = Server("lighthouse", "--concurrent", "--num-bytes", "300", "--delay", "0.02", "--quiet")
        cls.split = Server(utf8, "--concurrent", "--num-bytes", "1", "--delay", "0.001", "--quiet")
        cls.fast = Server("caffe", "--quiet", command_name="fastpoetry")
        cls.xform = Server("--quiet", command_name="transformedpoetry")

    @classmethod
    def tearDownClass(cls):
        import shutil

        for server in (cls.slow, cls.split, cls.fast, cls.xform):
            server.stop()
        shutil.rmtree(cls.dir, True)


class EveryNewEngineTests(ServersForEveryTest):
    def test_poems_byte_for_byte_split_characters_and_a_refused_connection(self):
        dead = free_port()
        addresses = [local(self.slow.port), local(dead), local(self.split.port), local(self.fast.port)]
        for engine in NEW_ENGINES:
            with self.subTest(engine=engine):
                events = collect(engine, addresses)
                finished = {e.task: e.poem for e in events if isinstance(e, Finished)}
                self.assertEqual(
                    finished, {1: load_poem("lighthouse").data, 3: UTF8_POEM, 4: load_poem("caffe").data}
                )
                self.assertEqual(
                    [(e.task, e.reason) for e in events if isinstance(e, Failed)], [(2, "Connection refused")]
                )
                for task in (1, 3, 4):
                    kinds = [type(e) for e in events if e.task == task]
                    self.assertEqual(kinds[:2], [Started, Connected])
                    got = sum(e.nbytes for e in events if e.task == task and isinstance(e, Received))
                    self.assertEqual(got, len(finished[task]))
                    self.assertEqual([e.task for e in events if isinstance(e, Finished)].count(task), 1)

    def test_xform_cummingsifies_and_a_failed_transform_keeps_the_poem(self):
        caffe = load_poem("caffe").data
        for engine in NEW_ENGINES:
            with self.subTest(engine=engine):
                events = collect(engine, [local(self.fast.port)], xform=local(self.xform.port))
                self.assertEqual(len([e for e in events if isinstance(e, Transformed)]), 1)
                [done] = [e for e in events if isinstance(e, Finished)]
                self.assertEqual(done.text, caffe.decode().lower())

                events = collect(
                    engine, [local(self.fast.port)], xform=local(self.xform.port), transform="explode"
                )
                self.assertEqual(
                    [e.reason for e in events if isinstance(e, TransformFailed)],
                    ["the transform server closed without an answer"],
                )
                self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [caffe])

                events = collect(engine, [local(self.fast.port)], xform=local(free_port()))
                self.assertEqual(
                    [e.reason for e in events if isinstance(e, TransformFailed)], ["Connection refused"]
                )
                self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [caffe])

    def test_json_from_the_command_line(self):
        for engine in NEW_ENGINES:
            with self.subTest(engine=engine):
                result = run(
                    "get-poetry",
                    "--engine",
                    engine,
                    "--json",
                    "--xform",
                    str(self.xform.port),
                    str(self.split.port),
                )
                self.assertEqual(result.returncode, 0, result.stderr)
                records = [json.loads(line) for line in result.stdout.splitlines()]
                [finished] = [r for r in records if r["event"] == "finished"]
                self.assertEqual(finished["poem"], UTF8_POEM.decode().lower())
                self.assertEqual(records[-1]["event"], "summary")
                self.assertEqual((records[-1]["poems"], records[-1]["failed"]), (1, 0))

    def test_a_timeout_costs_one_task(self):
        import socket

        # A listener that never accepts: the kernel completes the connection, then nothing comes.
        quiet = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(quiet.close)
        for engine in NEW_ENGINES:
            with self.subTest(engine=engine):
                events = collect(engine, [local(quiet.getsockname()[1]), local(self.fast.port)], timeout=0.3)
                failed = [e for e in events if isinstance(e, Failed)]
                self.assertEqual([e.task for e in failed], [1])
                self.assertEqual(failed[0].reason, "no data for 0.3 s")
                self.assertEqual([e.task for e in events if isinstance(e, Finished)], [2])


class LineFormatTests(ServersForEveryTest):
    def test_threads_and_asyncio_print_the_select_engines_lines(self):
        for engine in ["threads", "asyncio"]:
            with self.subTest(engine=engine):
                dead = str(free_port())
                result = run("get-poetry", "--engine", engine, str(self.slow.port), dead)
                self.assertEqual(result.returncode, 1)
                self.assertEqual(
                    result.stderr.splitlines(),
                    [f"Task 2: failed to get poetry from 127.0.0.1:{dead}: Connection refused"],
                )
                lines = result.stdout.splitlines()
                chunk = re.compile(rf"^Task 1: got \d+ bytes of poetry from 127\.0\.0\.1:{self.slow.port}$")
                self.assertTrue(all(chunk.match(line) for line in lines[:-3]), lines)
                self.assertEqual(lines[-3:-1], ["Task 1 finished", "Task 1: 3073 bytes of poetry"])
                self.assertRegex(lines[-1], r"^Got 1 poem in 0:00:\d\d\.\d{6}$")

    def test_actors_print_chunks_then_poems_in_arrival_order_or_ordered(self):
        ports = [str(self.slow.port), str(self.fast.port)]  # the fast poem arrives first
        result = run("get-poetry", "--engine", "actors", *ports)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertRegex(lines[0], r"^Task [12]: got \d+ bytes of poetry from 127\.0\.0\.1:\d+$")
        headers = [line for line in lines if re.match(r"^Task \d: got \d+ bytes of poetry from .* in ", line)]
        self.assertEqual([h.split(":")[0] for h in headers], ["Task 2", "Task 1"])
        self.assertRegex(
            headers[0],
            rf"^Task 2: got 610 bytes of poetry from 127\.0\.0\.1:{ports[1]} "
            r"in 0:00:\d\d\.\d{6}$",
        )
        self.assertLess(lines.index(headers[0]), lines.index("Al caffè della stazione"))
        self.assertRegex(lines[-1], r"^Got 2 poems in ")

        ordered = run("get-poetry", "--engine", "actors", "--ordered", *ports).stdout.splitlines()
        headers = [
            line for line in ordered if re.match(r"^Task \d: got \d+ bytes of poetry from .* in ", line)
        ]
        self.assertEqual([h.split(":")[0] for h in headers], ["Task 1", "Task 2"])
        self.assertLess(
            ordered.index(load_poem("lighthouse").data.decode().splitlines()[0]),
            ordered.index("Al caffè della stazione"),
        )

    def test_lazy_prints_a_line_per_line_and_the_first_poem_as_it_arrives(self):
        # Task 1 is the slowest server; its first line must be out long before it finishes.
        result = run("get-poetry", "--engine", "lazy", "--json", str(self.slow.port), str(self.fast.port))
        self.assertEqual(result.returncode, 0, result.stderr)
        records = [json.loads(line) for line in result.stdout.splitlines()][:-1]
        lines_1 = [r for r in records if r["event"] == "poemline" and r["task"] == 1]
        lines_2 = [r for r in records if r["event"] == "poemline" and r["task"] == 2]
        [done_1] = [r for r in records if r["event"] == "finished" and r["task"] == 1]
        [done_2] = [r for r in records if r["event"] == "finished" and r["task"] == 2]
        self.assertEqual("".join(r["line"] for r in lines_1), load_poem("lighthouse").data.decode())
        self.assertEqual("".join(r["line"] for r in lines_2), load_poem("caffe").data.decode())
        self.assertLess(lines_1[0]["t"], done_1["t"] - 0.1)  # first line well before the end of poem 1
        self.assertLess(done_2["t"], lines_1[0]["t"] + 0.1)  # poem 2 was in early...
        self.assertGreaterEqual(lines_2[0]["t"], lines_1[-1]["t"])  # ...but printed after poem 1

        text = run("get-poetry", "--engine", "lazy", str(self.slow.port), str(self.fast.port)).stdout
        out = text.splitlines()
        per_line = re.compile(r"^Task ([12]): got (\d+) bytes of poetry from 127\.0\.0\.1:\d+$")
        counts = [int(m.group(2)) for m in map(per_line.match, out) if m and m.group(1) == "1"]
        self.assertEqual(
            counts, [len(line) for line in load_poem("lighthouse").data.splitlines(keepends=True)]
        )
        first_line = load_poem("lighthouse").data.decode().splitlines()[0]
        last_got_1 = max(i for i, line in enumerate(out) if line.startswith("Task 1: got"))
        self.assertLess(out.index(first_line), last_got_1)
        self.assertRegex(out[-1], r"^Got 2 poems in ")

    def test_ordered_and_supervise_belong_to_actors(self):
        for flag in (["--ordered"], ["--supervise", "2"]):
            result = run("get-poetry", "--engine", "select", *flag, "10000")
            self.assertEqual(result.returncode, 2)
            self.assertIn("works with --engine actors", result.stderr)
        result = run("get-poetry", "--engine", "actors", "--supervise", "-1", "10000")
        self.assertEqual(result.returncode, 2)


class ActorTests(SynchronousTestCase):
    def test_a_crashed_process_is_counted_down_and_the_others_finish(self):
        crashing = ResettingServer(load_poem("kettle").data, resets=1)
        self.addCleanup(crashing.close)
        good = Server("relay", "--concurrent", "--num-bytes", "200", "--delay", "0.01", "--quiet")
        self.addCleanup(good.stop)
        events = collect("actors", [local(crashing.port), local(good.port)])
        [failed] = [e for e in events if isinstance(e, Failed)]
        self.assertEqual((failed.task, failed.reason), (1, "Connection reset by peer"))
        self.assertEqual(
            [(e.task, e.poem) for e in events if isinstance(e, Finished)], [(2, load_poem("relay").data)]
        )

    def test_supervise_restarts_a_crashed_process(self):
        kettle = load_poem("kettle").data
        crashing = ResettingServer(kettle, resets=2)
        self.addCleanup(crashing.close)
        events = collect("actors", [local(crashing.port)], supervise=2)
        self.assertEqual(
            [(e.attempt, e.reason) for e in events if isinstance(e, Restarted)],
            [(1, "Connection reset by peer"), (2, "Connection reset by peer")],
        )
        self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [kettle])
        self.assertEqual(crashing.accepted, 3)

    def test_supervise_gives_up_after_n_restarts_with_readable_lines(self):
        dead = str(free_port())
        result = run("get-poetry", "--engine", "actors", "--supervise", "2", dead)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [
                "Task 1 crashed (Connection refused); restarting it (1 of 2)",
                "Task 1 crashed (Connection refused); restarting it (2 of 2)",
                f"Task 1: failed to get poetry from 127.0.0.1:{dead}: Connection refused",
            ],
        )
        self.assertNotIn("Traceback", result.stderr)


class ActorRuntimeTests(SynchronousTestCase):
    def test_down_notices_carry_how_each_process_ended(self):
        from poetrynow.clients.actor_runtime import NORMAL, Down, Runtime

        seen: list = []

        async def fine(me):
            return None

        async def crash(me):
            raise ValueError("badmatch")

        async def echo(me, main):
            main.send(("hello", await me.receive()))

        async def main(me):
            pids = {}
            for function in (fine, crash):
                pid, ref = me.spawn_monitor(function)
                pids[ref] = function.__name__
            pid, ref = me.spawn_monitor(echo, me.pid)
            pids[ref] = "echo"
            pid.send("poem")
            while pids:
                message = await me.receive()
                if isinstance(message, Down):
                    seen.append((pids.pop(message.ref), message.reason))
                else:
                    seen.append(message)

        Runtime().run(main)
        self.assertEqual(
            sorted(map(str, seen)),
            sorted(
                map(
                    str,
                    [
                        ("fine", NORMAL),
                        ("crash", ValueError("badmatch")),
                        ("hello", "poem"),
                        ("echo", NORMAL),
                    ],
                )
            ),
        )
        self.assertLess(seen.index(("hello", "poem")), [s[0] for s in seen].index("echo"))


class AsyncioLoopTests(SynchronousTestCase):
    def test_uvloop_when_installed_plain_asyncio_otherwise(self):
        import sys

        from poetrynow.clients.asyncio_engine import loop_factory

        saved = sys.modules.get("uvloop")
        sys.modules["uvloop"] = None  # as if not installed: import fails
        try:
            self.assertIsNone(loop_factory())
        finally:
            if saved is None:
                del sys.modules["uvloop"]
            else:
                sys.modules["uvloop"] = saved
        try:
            import uvloop
        except ImportError:
            return
        self.assertIs(loop_factory(), uvloop.new_event_loop)
