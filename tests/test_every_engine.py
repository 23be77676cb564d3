"""What every engine must do, engine by engine, against real servers on 127.0.0.1.

Over 300 lines because the contract every engine must meet is one class, run once per
engine; split, the contract would be read in pieces.

One contract, :class:`EngineContract`, is run once per row of the engine table
(``BlockingEngineTests``, ``ThreadsEngineTests``, ...), so a new engine is held to
it by adding its row. The servers are the project's own service trees on a
private reactor in a thread (tests.support.ServersInAThread). What each engine's
lines look like is tested on made-up events in test_report.py; what is particular
to one model (actors' supervision, the lazy engine's order) is tested below.
"""

from __future__ import annotations

import io
import json
import socket
from contextlib import redirect_stderr, redirect_stdout

from poetrynow.address import Address
from poetrynow.cli import getpoetry
from poetrynow.clients import ENGINES, XFORM, EngineOptions, run_engine
from poetrynow.clients.errors import EMPTY, NO_ANSWER
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
from poetrynow.poems import load_poem
from tests.extras import hidden, needs_uvloop
from tests.support import (
    UTF8_POEM,
    ResettingServer,
    ServersInAThread,
    StallingServer,
    free_port,
    temp_dir,
    write_poem,
)
from tests.time_limit import SynchronousTestCase

#: --timeout against a server that says nothing: the tests wait this out, so it is short, but
#: far longer than any gap in a poem from a server in a thread of this process, loaded or not.
SILENCE = 2.0


def local(port: int) -> Address:
    return Address("127.0.0.1", port)


def collect(engine: str, addresses, **options) -> list:
    events: list = []
    run_engine(engine, addresses, events.append, EngineOptions(**options))
    return events


def get_poetry_main(*argv: str) -> tuple[int, str, str]:
    """``get-poetry`` itself, run in this process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = getpoetry.main(list(argv))
    return status, out.getvalue(), err.getvalue()


class EngineContract:
    """Mixed into one TestCase per engine; ``engine`` names it."""

    engine = ""

    def setUp(self):
        self.servers = ServersInAThread(self)

    def test_poems_byte_for_byte_split_characters_and_a_refused_connection(self):
        utf8 = write_poem(temp_dir(self), "utf8.txt", UTF8_POEM)
        addresses = [
            local(self.servers.slow("lighthouse", 300, 0.005)),
            local(free_port()),
            local(self.servers.slow(utf8, 1, 0.0005)),  # one byte a chunk: every character split
            local(self.servers.fast("caffe")),
        ]
        events = collect(self.engine, addresses)
        finished = {e.task: e.poem for e in events if isinstance(e, Finished)}
        self.assertEqual(
            finished, {1: load_poem("lighthouse").data, 3: UTF8_POEM, 4: load_poem("caffe").data}
        )
        self.assertEqual(
            [(e.task, e.reason) for e in events if isinstance(e, Failed)], [(2, "Connection refused")]
        )
        for task in (1, 3, 4):
            mine = [e for e in events if e.task == task]
            self.assertEqual([type(e) for e in mine[:2]], [Started, Connected])
            self.assertEqual(sum(e.nbytes for e in mine if isinstance(e, Received)), len(finished[task]))
            self.assertEqual(len([e for e in mine if isinstance(e, Finished)]), 1)
            self.assertEqual(
                [e.t for e in mine if not isinstance(e, PoemLine)],
                sorted(e.t for e in mine if not isinstance(e, PoemLine)),
            )

    def test_a_silent_server_costs_one_task(self):
        # A listener that never accepts: the kernel completes the connection, then nothing comes.
        silent = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(silent.close)
        addresses = [local(silent.getsockname()[1]), local(self.servers.fast("kettle"))]
        # Long enough that the fast poem, from a server in a thread of this process, is never
        # silent that long on a loaded machine; the silent one fails after it all the same.
        events = collect(self.engine, addresses, timeout=SILENCE)
        self.assertEqual(
            [(e.task, e.reason) for e in events if isinstance(e, Failed)], [(1, f"no data for {SILENCE:g} s")]
        )
        self.assertEqual([e.task for e in events if isinstance(e, Finished)], [2])

    def test_a_server_that_stalls_mid_poem_times_out_counting_from_its_last_byte(self):
        stalling = StallingServer(b"ten bytes\n")
        self.addCleanup(stalling.close)
        events = collect(self.engine, [local(stalling.port)], timeout=SILENCE)
        [failed] = [e for e in events if isinstance(e, Failed)]
        self.assertEqual((failed.task, failed.reason, failed.received), (1, f"no data for {SILENCE:g} s", 10))
        last_byte = max(e.t for e in events if isinstance(e, Received))
        self.assertGreaterEqual(failed.t - last_byte, SILENCE - 0.01)

    def test_a_reset_mid_poem_fails_with_the_bytes_that_arrived(self):
        kettle = load_poem("kettle").data
        crashing = ResettingServer(kettle, resets=1)
        self.addCleanup(crashing.close)
        events = collect(self.engine, [local(crashing.port)])
        [failed] = [e for e in events if isinstance(e, Failed)]
        self.assertEqual(
            (failed.task, failed.reason), (1, "Connection reset by peer")
        )  # the same words in all
        self.assertLessEqual(failed.received, len(kettle) // 2)  # a reset may discard what was unread
        self.assertEqual(failed.received, sum(e.nbytes for e in events if isinstance(e, Received)))
        self.assertEqual([e for e in events if isinstance(e, Finished)], [])

    def test_an_empty_poem_is_a_failure_not_a_poem(self):
        from tests.twisted_support import CloseAtOnce, factory_of

        empty = self.servers.listen(factory_of(CloseAtOnce))
        events = collect(self.engine, [local(empty), local(self.servers.fast("kettle"))])
        self.assertEqual([(e.task, e.reason) for e in events if isinstance(e, Failed)], [(1, EMPTY)])
        self.assertEqual([e.task for e in events if isinstance(e, Finished)], [2])

    def test_runs_twice_in_one_process(self):
        port = self.servers.fast("caffe")
        for _ in range(2):
            events = collect(self.engine, [local(port)])
            self.assertEqual(len([e for e in events if isinstance(e, Finished)]), 1)

    def test_json_from_the_command_itself(self):
        port = self.servers.fast("caffe")
        status, out, err = get_poetry_main("--engine", self.engine, "--json", str(port))
        self.assertEqual((status, err), (0, ""))
        records = [json.loads(line) for line in out.splitlines()]
        [finished] = [r for r in records if r["event"] == "finished"]
        self.assertEqual(finished["poem"], load_poem("caffe").data.decode())
        self.assertEqual(
            (records[-1]["event"], records[-1]["poems"], records[-1]["failed"]), ("summary", 1, 0)
        )
        self.assertEqual(records[-1]["engine"], self.engine)
        if self.engine == "asyncio":
            from poetrynow.clients.asyncio_engine import loop_factory

            self.assertEqual(records[-1]["loop"], "uvloop" if loop_factory() else "asyncio")


class XformContract:
    """For the engines whose row says they take ``--xform``."""

    engine = ""

    def test_xform_cummingsifies_and_a_failed_transform_keeps_the_poem(self):
        caffe = load_poem("caffe").data
        poem, xform = local(self.servers.fast("caffe")), local(self.servers.transforms())

        events = collect(self.engine, [poem], xform=xform)
        self.assertEqual(len([e for e in events if isinstance(e, Transformed)]), 1)
        self.assertEqual([e.text for e in events if isinstance(e, Finished)], [caffe.decode().lower()])

        events = collect(self.engine, [poem], xform=xform, transform="explode")
        self.assertEqual([e.reason for e in events if isinstance(e, TransformFailed)], [NO_ANSWER])
        self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [caffe])

        # A transform server that accepts and never answers: --timeout gives up on it.
        silent = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(silent.close)
        events = collect(self.engine, [poem], xform=local(silent.getsockname()[1]), timeout=SILENCE)
        self.assertEqual(
            [e.reason for e in events if isinstance(e, TransformFailed)], [f"no data for {SILENCE:g} s"]
        )
        self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [caffe])

        events = collect(self.engine, [poem], xform=local(free_port()))
        self.assertEqual([e.reason for e in events if isinstance(e, TransformFailed)], ["Connection refused"])
        self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [caffe])


def _engine_cases() -> dict[str, type]:
    cases = {}
    for name, info in ENGINES.items():
        bases: tuple[type, ...] = (EngineContract,)
        if XFORM in info.takes:
            bases += (XformContract,)
        title = f"{name.capitalize()}EngineTests"
        cases[title] = type(title, (*bases, SynchronousTestCase), {"engine": name, "__module__": __name__})
    return cases


globals().update(_engine_cases())


class ActorsTests(SynchronousTestCase):
    """Part 20: poems in arrival order (or command-line order), and supervision."""

    def setUp(self):
        self.servers = ServersInAThread(self)

    def test_poems_come_in_arrival_order_or_in_command_line_order(self):
        addresses = [local(self.servers.slow("lighthouse", 300, 0.005)), local(self.servers.fast("caffe"))]
        arrived = [e.task for e in collect("actors", addresses) if isinstance(e, Finished)]
        self.assertEqual(arrived, [2, 1])
        ordered = [e.task for e in collect("actors", addresses, ordered=True) if isinstance(e, Finished)]
        self.assertEqual(ordered, [1, 2])

    def test_a_crashed_process_is_counted_down_and_the_others_finish(self):
        crashing = ResettingServer(load_poem("kettle").data, resets=1)
        self.addCleanup(crashing.close)
        events = collect("actors", [local(crashing.port), local(self.servers.slow("relay", 200, 0.005))])
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
            [(e.attempt, e.limit, e.reason) for e in events if isinstance(e, Restarted)],
            [(1, 2, "Connection reset by peer"), (2, 2, "Connection reset by peer")],
        )
        self.assertEqual([e.poem for e in events if isinstance(e, Finished)], [kettle])
        self.assertEqual(crashing.accepted, 3)

    def test_supervise_gives_up_after_n_restarts(self):
        events = collect("actors", [local(free_port())], supervise=2)
        self.assertEqual([e.attempt for e in events if isinstance(e, Restarted)], [1, 2])
        self.assertEqual([e.reason for e in events if isinstance(e, Failed)], ["Connection refused"])


class LazyTests(SynchronousTestCase):
    """Part 21: the first poem line by line as it arrives; later poems when their turn comes."""

    def setUp(self):
        self.servers = ServersInAThread(self)

    def test_lines_in_command_line_order_the_first_poem_as_it_arrives(self):
        lighthouse, caffe = load_poem("lighthouse").data, load_poem("caffe").data
        addresses = [local(self.servers.slow("lighthouse", 300, 0.02)), local(self.servers.fast("caffe"))]
        events = collect("lazy", addresses)
        lines = [e for e in events if isinstance(e, PoemLine)]
        self.assertEqual("".join(e.text for e in lines if e.task == 1), lighthouse.decode())
        self.assertEqual("".join(e.text for e in lines if e.task == 2), caffe.decode())
        done = {e.task: e.t for e in events if isinstance(e, Finished)}
        first_line_1 = next(e for e in lines if e.task == 1).t
        self.assertLess(first_line_1, done[1] - 0.1)  # printed long before poem 1 was whole
        self.assertLess(done[2], first_line_1 + 0.1)  # poem 2 was in early...
        last_line_1 = events.index([e for e in lines if e.task == 1][-1])
        first_line_2 = events.index(next(e for e in lines if e.task == 2))
        self.assertLess(last_line_1, first_line_2)  # ...but printed after poem 1

    def test_a_received_event_per_read_and_whole_lines_to_print(self):
        # Chunks of 17 bytes never line up with the lines: the reads are reported as read.
        events = collect("lazy", [local(self.servers.slow("lighthouse", 17, 0.002))])
        poem = load_poem("lighthouse").data
        reads = [e.nbytes for e in events if isinstance(e, Received)]
        self.assertEqual(sum(reads), len(poem))
        # Whole 17-byte chunks (one or more per read), the poem's short last chunk in the last read.
        self.assertTrue(all(n % 17 == 0 for n in reads[:-1]), reads)
        self.assertEqual(reads[-1] % 17, len(poem) % 17)
        self.assertNotEqual(reads, [len(line) for line in poem.splitlines(keepends=True)])
        texts = [e.text for e in events if isinstance(e, PoemLine)]
        self.assertEqual("".join(texts), poem.decode())
        self.assertTrue(all(text.endswith("\n") for text in texts), texts)  # whole lines only
        self.assertGreater(len(texts), 3)  # streamed as the lines came, not all at the end


class AsyncioLoopTests(SynchronousTestCase):
    def test_plain_asyncio_without_uvloop(self):
        from poetrynow.clients.asyncio_engine import loop_factory

        with hidden("uvloop"):
            self.assertIsNone(loop_factory())

    @needs_uvloop
    def test_uvloop_when_installed(self):
        import uvloop

        from poetrynow.clients.asyncio_engine import loop_factory

        self.assertIs(loop_factory(), uvloop.new_event_loop)


class PoemLinesTests(SynchronousTestCase):
    """The lazy engine's line splitter, fed every way a poem can be cut into reads."""

    def lines_of(self, reads: list[bytes]) -> list[bytes]:
        import asyncio

        from poetrynow.clients.lazy import poem_lines

        async def collect_lines() -> list[bytes]:
            reader = asyncio.StreamReader()
            for data in reads:
                reader.feed_data(data)
            reader.feed_eof()
            return [line async for line in poem_lines(reader, None)]

        return asyncio.run(collect_lines())

    def test_every_split_gives_the_same_lines(self):
        poem = "Ça va,\nDéjà vu\n\nno newline at the end".encode()
        expected = poem.splitlines(keepends=True)
        for cut in range(len(poem) + 1):
            with self.subTest(cut=cut):
                self.assertEqual(self.lines_of([poem[:cut], poem[cut:]]), expected)
        self.assertEqual(self.lines_of([bytes([b]) for b in poem]), expected)

    def test_one_long_line_in_many_reads(self):
        line = b"x" * (1 << 20)
        self.assertEqual(self.lines_of([line[i : i + 4096] for i in range(0, len(line), 4096)]), [line])


class EndlessServerTests(SynchronousTestCase):
    """A server that never stops sending: each engine fails the task at --max-bytes, memory bounded."""

    def test_every_engine_stops_at_the_limit(self):
        import os
        import subprocess

        from tests.support import command
        from tests.twisted_support import Endless, factory_of

        servers = ServersInAThread(self)
        endless = servers.listen(factory_of(Endless))
        limit = 1_000_000
        too_large = f"poem larger than {limit} bytes"
        for engine in ENGINES:
            with self.subTest(engine=engine):
                process = subprocess.Popen(
                    [*command("get-poetry"), "--engine", engine, "--max-bytes", str(limit), str(endless)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                _, status, usage = os.wait4(process.pid, 0)
                err = process.stderr.read() if process.stderr else ""
                process.stderr.close() if process.stderr else None
                self.assertEqual(os.waitstatus_to_exitcode(status), 1, err)
                self.assertEqual(
                    err.splitlines(),
                    [f"Task 1: failed to get poetry from 127.0.0.1:{endless}: {too_large}"],
                )
                self.assertLess(usage.ru_maxrss, 200 * 1024)  # KiB: the interpreter and its imports, no poem

    def test_the_proxy_cuts_an_endless_upstream_off_and_caches_nothing(self):
        from tests.support import Server, run
        from tests.twisted_support import Endless, factory_of

        servers = ServersInAThread(self)
        endless = servers.listen(factory_of(Endless))
        proxy = Server(str(endless), "--max-bytes", "1000000", command_name="poetry-proxy")
        try:
            for _ in range(2):  # the second fetch is tried again: nothing was cached
                result = run("get-poetry", "--engine", "select", str(proxy.port))
                self.assertEqual(result.returncode, 1)
                self.assertIn("Connection reset by peer", result.stderr)
            with open(f"/proc/{proxy.process.pid}/status") as status:
                peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
            self.assertLess(peak, 200 * 1024)  # KiB
        finally:
            proxy.stop()
        self.assertEqual(proxy.stdout.count("Fetching poem from server."), 2)
        self.assertEqual(proxy.stdout.count("The poem download failed: poem larger than 1000000 bytes"), 2)
