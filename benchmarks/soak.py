"""Soak: every server under a churn of unusual but legal clients; its bytes checked, its
memory and descriptors before and after.

Each server runs as its real command, a process of its own on 127.0.0.1, port 0: the
blocking ``slowpoetry``, ``slowpoetry --concurrent`` with faults (a reset planned for a
share of connections), the same ``--plain`` with a planned early close, ``fastpoetry``,
``poetry-proxy`` in front of a fastpoetry of its own, and ``transformedpoetry``. All of
them are soaked at once for SECONDS, each by CLIENTS connections at a time from one
asyncio loop here, so hundreds cost little (the blocking server, one client at a time,
gets a few). Each client, in turn: reads everything; hangs up at once; hangs up after its
first bytes; half-closes (SHUT_WR) at once and reads everything; sends a greeting line
first and reads everything. For the transform server a client's request is its netstring
``cummingsify.POEM``, and the greeting comes after it.

A whole read must be the poem to the byte, ended by a FIN. The fault plan's cuts are
exact byte counts (poetrynow.faults), put mid-chunk where no slip of the server ends a
read, so a read that ends there as planned (a reset, or a FIN), with the poem's first
bytes, is counted as cut by design; anything else is a failure, named by what the client
saw: a reset, a short read, wrong bytes, a timeout.

The server's VmRSS, VmHWM (its peak) and open descriptors are read from /proc after a
warm-up churn has drained, every few seconds during the soak, and once the churn has
stopped and drained again. A server is flat when its descriptors come back to where they
were and its RSS to within a small margin. Exit 1 on any failure or a server not flat.

Over 300 lines because the clients, their verdicts, the servers and the table live
together so that what is counted and how it is checked cannot drift apart.

    .venv/bin/python benchmarks/soak.py [--seconds 60] [--clients 200] [--servers blocking,fast,...]
        [--poem NAME|PATH] [--warmup 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from poetrynow.cli.common import raise_fd_limit
from poetrynow.netstring import encode
from poetrynow.poems import load_poem
from poetrynow.tables import format_table
from poetrynow.transforms import TransformError, apply

sys.path.insert(0, str(Path(__file__).resolve().parent))
from competitors import Competitor, run_main
from servers import BIN

READ, AT_ONCE, MID_POEM, HALF_CLOSE, GREETING = (
    "read",
    "hang-up",
    "mid-poem-hang-up",
    "half-close",
    "greeting",
)
KINDS = (READ, AT_ONCE, MID_POEM, HALF_CLOSE, GREETING)
SERVERS = ("blocking", "concurrent", "concurrent-plain", "fast", "proxy", "transform")
HELLO = b"hello, poetry\r\n"
ENDS = {"fin": "FIN", "reset": "reset"}  # how a read ended, in the failures' words
CHUNKS, DELAY = 10, 0.1  # the slow servers: any poem in ten chunks, about a second a client
BLOCKING_CLIENTS = 4  # the rest wait in its listen queue: a few keep every kind of client coming
MB = 1 << 20


@dataclass(frozen=True)
class Subject:
    """A server to soak: its command, what a whole read must be, and the cuts its fault plan makes."""

    name: str
    command: tuple[str, ...]
    expected: bytes
    request: bytes = b""  # what every client but the one that hangs up at once sends first
    cuts: frozenset[tuple[str, int]] = frozenset()  # (how the read ended, after how many bytes)
    clients: int | None = None  # None: --clients
    upstream: tuple[str, ...] = ()  # a server started first, whose port ends the command


def subjects(poem_name: str, poem: bytes) -> dict[str, Subject]:
    chunk = max(1, math.ceil(len(poem) / CHUNKS))
    # Mid-chunk, where nothing but the plan ends a read: a server that cuts a poem short by
    # mistake cuts it where a chunk ends, and is not taken for the plan.
    cut = 6 * chunk + chunk // 2
    slow = (str(BIN / "slowpoetry"), poem_name, "--quiet", "--iface", "127.0.0.1")
    slow += ("--num-bytes", str(chunk), "--delay", str(DELAY))
    faulty = ("--concurrent", "--jitter", "0.02", "--faulty", "0.3", "--seed", "22")
    fast = (str(BIN / "fastpoetry"), poem_name, "--quiet", "--iface", "127.0.0.1")
    found = {
        "blocking": Subject("blocking", slow, poem, clients=BLOCKING_CLIENTS),
        "concurrent": Subject(
            "concurrent",
            (*slow, *faulty, "--accept-delay", "0.05", "--slow-close", "0.1")
            + ("--stall-after", str(3 * chunk), "--stall-for", "0.3", "--reset-after", str(cut)),
            poem,
            cuts=frozenset({("reset", cut)}),
        ),
        "concurrent-plain": Subject(
            "concurrent-plain",
            (*slow, *faulty, "--plain", "--close-after", str(cut)),
            poem,
            cuts=frozenset({("fin", cut)}),
        ),
        "fast": Subject("fast", fast, poem),
        "proxy": Subject(
            "proxy", (str(BIN / "poetry-proxy"), "--quiet", "--iface", "127.0.0.1"), poem, upstream=fast
        ),
    }
    try:
        answer = encode(apply("cummingsify", poem))
    except TransformError as problem:
        print(f"transform: left out, the poem cannot be transformed: {problem}", file=sys.stderr)
    else:
        command = (str(BIN / "transformedpoetry"), "--quiet", "--iface", "127.0.0.1")
        found["transform"] = Subject("transform", command, answer, request=encode(b"cummingsify." + poem))
    return found


class SoakClient(asyncio.Protocol):
    """One connection of one kind: says what its kind says, reads, and notes how the read ended."""

    def __init__(self, kind: str, request: bytes, ended: asyncio.Future):
        self.kind, self.request, self.ended = kind, request, ended
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.how = "hung up"  # until the server ends it: "fin" or "reset"

    def connection_made(self, transport):
        self.transport = transport
        if self.kind == AT_ONCE:
            transport.close()
            return
        transport.write(self.request + (HELLO if self.kind == GREETING else b""))
        if self.kind == HALF_CLOSE:
            transport.write_eof()

    def data_received(self, data: bytes):
        self.data += data
        if self.kind == MID_POEM:
            self.transport.close()

    def eof_received(self):
        self.how = "fin"

    def connection_lost(self, exc):
        if isinstance(exc, ConnectionResetError):
            self.how = "reset"
        elif exc is not None:
            self.how = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        if not self.ended.done():
            self.ended.set_result(None)


async def connect_once(port: int, kind: str, request: bytes, timeout: float) -> tuple[str, bytes]:
    """One client's connection: how it ended ("fin", "reset", "hung up", ...) and the bytes read."""
    loop = asyncio.get_running_loop()
    client = SoakClient(kind, request, loop.create_future())
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            await client.ended
    except TimeoutError:
        if client.transport is not None:
            client.transport.abort()
        return "timeout", bytes(client.data)
    except OSError as error:
        return f"connect failed ({error.strerror or error})", b""
    return client.how, bytes(client.data)


def judge(subject: Subject, kind: str, how: str, data: bytes) -> tuple[str, str | None, str | None]:
    """A connection's fate: "whole", "cut" (where the fault plan cuts), "hung up" (as its client
    meant), or "failed", with what happened (the same words for the same failure) and its numbers."""
    expected = subject.expected
    of = f"{len(data)} of {len(expected)} bytes"
    if not expected.startswith(data):
        at = next((i for i, (a, b) in enumerate(zip(data, expected)) if a != b), len(expected))
        return "failed", "wrong bytes", f"{ENDS.get(how, how)} after {of}, the first wrong one at {at}"
    if kind in (AT_ONCE, MID_POEM):
        return ("hung up", None, None) if how in ("hung up", "fin", "reset") else ("failed", how, of)
    if how == "fin" and len(data) == len(expected):
        return "whole", None, None
    if (how, len(data)) in subject.cuts:
        return "cut", None, None
    seen = "short read (FIN)" if how == "fin" else ENDS.get(how, how)
    where = "after the whole poem" if len(data) == len(expected) else "mid-poem" if data else "before a byte"
    return "failed", f"{seen} {where}", f"after {of}"


@dataclass
class Tally:
    """What one server's clients saw: connections by kind and fate, and each failure by what happened."""

    fates: collections.Counter = field(default_factory=collections.Counter)  # (kind, fate)
    failures: collections.Counter = field(default_factory=collections.Counter)  # (kind, what)
    examples: dict = field(default_factory=dict)  # (kind, what): the first one's numbers

    def add(self, kind: str, fate: str, what: str | None, numbers: str | None) -> None:
        self.fates[kind, fate] += 1
        if fate == "failed":
            self.failures[kind, what] += 1
            self.examples.setdefault((kind, what), numbers)

    def count(self, kind: str | None = None, fate: str | None = None) -> int:
        return sum(n for (k, f), n in self.fates.items() if kind in (None, k) and fate in (None, f))


@dataclass(frozen=True)
class Sample:
    rss: int  # bytes
    peak_rss: int  # VmHWM: the most the process has held since it started
    fds: int


def sample(pid: int) -> Sample | None:
    """A process's RSS, peak RSS and open descriptors, from /proc; None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return Sample(int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024, fds)
    except (OSError, KeyError):  # gone, or a zombie without memory
        return None


@dataclass
class Soaked:
    """A subject running: its server (and the upstream it needs), what its clients saw, its samples."""

    subject: Subject
    server: Competitor
    helpers: list[Competitor]
    clients: int
    kinds: tuple[str, ...] = KINDS
    tally: Tally = field(default_factory=Tally)
    samples: dict[str, Sample | None] = field(default_factory=dict)  # idle, before, after
    peak_fds: int = 0

    def now(self) -> Sample | None:
        return sample(self.server.process.pid)


def start(subject: Subject, clients: int, kinds: tuple[str, ...], workdir: str) -> Soaked:
    helpers = []
    command = list(subject.command)
    if subject.upstream:
        log = Path(workdir) / f"{subject.name}-upstream.log"
        helpers.append(Competitor(f"{subject.name} upstream", list(subject.upstream), log=log).start())
        command.append(f"127.0.0.1:{helpers[0].port}")
    server = Competitor(subject.name, command, log=Path(workdir) / f"{subject.name}.log").start()
    return Soaked(subject, server, helpers, subject.clients or clients, kinds)


async def churn(soaked: Soaked, slot: int, until: float, timeout: float, tally: Tally) -> None:
    """One client slot: connection after connection, each of the next kind, until ``until``."""
    turn = slot
    while time.monotonic() < until:
        kind = soaked.kinds[turn % len(soaked.kinds)]
        turn += 1
        how, data = await connect_once(soaked.server.port, kind, soaked.subject.request, timeout)
        tally.add(kind, *judge(soaked.subject, kind, how, data))


async def churn_all(running: list[Soaked], seconds: float, timeout: float, warm_up: bool = False) -> None:
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(
            churn(soaked, slot, until, timeout, Tally() if warm_up else soaked.tally)
            for soaked in running
            for slot in range(soaked.clients)
        )
    )


async def drained(running: list[Soaked], back_to: dict[str, int], seconds: float) -> dict[str, Sample | None]:
    """Each server's sample once its descriptors are back to ``back_to`` (or ``seconds`` have passed)."""
    deadline = time.monotonic() + seconds
    while True:
        samples = {soaked.subject.name: soaked.now() for soaked in running}
        back = all(s is None or s.fds <= back_to[name] for name, s in samples.items())
        if back or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.2)


async def watch(running: list[Soaked], every: float) -> None:
    """Sample every server each second (its peak descriptors); every ``every`` seconds, one
    progress line each on stderr."""
    start = time.monotonic()
    said = start
    while True:
        await asyncio.sleep(min(1.0, every))
        say = time.monotonic() - said >= every
        if say:
            said = time.monotonic()
        for soaked in running:
            now = soaked.now()
            soaked.peak_fds = max(soaked.peak_fds, now.fds if now else 0)
            if say:
                where = "gone" if now is None else f"RSS {now.rss / MB:.1f} MB, {now.fds} fds"
                print(
                    f"{time.monotonic() - start:5.0f} s  {soaked.subject.name}: "
                    f"{soaked.tally.count():,} connections, {soaked.tally.count(fate='failed'):,} failed, "
                    f"{where}",
                    file=sys.stderr,
                    flush=True,
                )


async def soak(running: list[Soaked], args) -> None:
    for soaked in running:
        soaked.samples["idle"] = soaked.now()
    idle = {s.subject.name: s.samples["idle"].fds for s in running if s.samples["idle"]}
    await churn_all(running, args.warmup, args.timeout, warm_up=True)
    before = await drained(running, idle, args.drain)
    for soaked in running:
        soaked.samples["before"] = before[soaked.subject.name]
    watcher = asyncio.create_task(watch(running, args.every))
    await churn_all(running, args.seconds, args.timeout)
    watcher.cancel()
    back_to = {name: s.fds for name, s in before.items() if s}
    after = await drained(running, back_to, args.drain)
    for soaked in running:
        soaked.samples["after"] = after[soaked.subject.name]
        fds = [s.fds for s in (before[soaked.subject.name], soaked.samples["after"]) if s]
        soaked.peak_fds = max([soaked.peak_fds, *fds])


def result(soaked: Soaked, rss_margin: float) -> dict:
    """One server's figures, as the table and --json give them."""
    tally, samples = soaked.tally, soaked.samples
    before, after = samples.get("before"), samples.get("after")
    flat = (
        before is not None
        and after is not None
        and after.fds <= before.fds
        and after.rss <= before.rss + max(rss_margin * MB, before.rss * 0.05)
    )
    lines = soaked.server.log.read_text().splitlines() if soaked.server.log else []
    logged = [line for line in lines if not line.endswith(f" on port {soaked.server.port}.")]
    return {
        "server": soaked.subject.name,
        "command": " ".join([Path(soaked.server.command[0]).name, *soaked.server.command[1:]]),
        "clients": soaked.clients,
        "fates": {kind: {fate: n for (k, fate), n in tally.fates.items() if k == kind} for kind in KINDS},
        "failures": [
            {"kind": kind, "what": what, "count": n, "example": tally.examples[kind, what]}
            for (kind, what), n in tally.failures.most_common()
        ],
        "rss_before": before.rss if before else None,
        "rss_after": after.rss if after else None,
        "peak_rss": after.peak_rss if after else None,
        "fds_before": before.fds if before else None,
        "peak_fds": soaked.peak_fds,
        "fds_after": after.fds if after else None,
        "flat": flat,
        "log_lines": len(logged),
        "log_first": logged[:5],
    }


def megabytes(n: int | None) -> str:
    return "gone" if n is None else f"{n / MB:.1f} MB"


def report(results: list[dict], args, poem: bytes) -> None:
    print(
        f"Soak: {args.seconds:g} s, after {args.warmup:g} s of warm-up, every server at once; "
        f"{args.clients} clients at a time per server (the blocking one, one client at a time: "
        f"{BLOCKING_CLIENTS}), each in turn: "
        f"{', '.join(KINDS)}; poem {args.poem} ({len(poem)} bytes).\n"
    )
    rows = []
    for r in results:
        for kind in KINDS:
            fates = r["fates"][kind]
            rows.append(
                (r["server"], kind, f"{sum(fates.values()):,}")
                + tuple(f"{fates.get(fate, 0):,}" for fate in ("whole", "cut", "hung up", "failed"))
            )
    headings = ("server", "client", "connections", "whole, verified", "cut by the plan", "hung up", "failed")
    print(format_table(headings, rows, right={2, 3, 4, 5, 6}))
    print()
    rows = [
        (
            r["server"],
            f"{r['clients']}",
            megabytes(r["rss_before"]),
            megabytes(r["rss_after"]),
            megabytes(r["peak_rss"]),
            f"{r['fds_before']}",
            f"{r['peak_fds']}",
            f"{r['fds_after']}",
            "yes" if r["flat"] else "NO",
        )
        for r in results
    ]
    headings = ("server", "clients", "RSS before", "RSS after", "peak RSS", "fds before", "peak fds")
    print(format_table((*headings, "fds after", "flat"), rows, right=set(range(1, 8))))
    failures = [
        (r["server"], f["kind"], f["what"], f"{f['count']:,}", f["example"])
        for r in results
        for f in r["failures"]
    ]
    if failures:
        print("\nFailures, by what the client saw:\n")
        print(format_table(("server", "client", "what happened", "count", "e.g."), failures, right={3}))
    for r in results:
        if r["log_lines"]:
            print(f"\n{r['server']} logged {r['log_lines']:,} lines; the first: {r['log_first'][0]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="how long the churn lasts (default: 60)")
    p.add_argument("--clients", type=int, default=200, help="connections at a time per server (default: 200)")
    p.add_argument(
        "--servers", default="all", help=f"comma-separated, of: {', '.join(SERVERS)} (default: all)"
    )
    p.add_argument("--poem", default="kettle", help="a bundled poem's name or a file path (default: kettle)")
    p.add_argument("--kinds", default=",".join(KINDS), help="the clients, comma-separated, taken in turn")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of churn before the first sample")
    p.add_argument("--drain", type=float, default=15.0, help="seconds the descriptors may take to come back")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (and progress lines)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a client waits before giving up")
    p.add_argument(
        "--rss-margin", type=float, default=2.0, help="MB (or 5%%) of RSS that still counts as flat"
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON, not as tables")
    args = p.parse_args()
    raise_fd_limit()
    poem = load_poem(args.poem).data
    every = subjects(args.poem, poem)
    names = list(every) if args.servers == "all" else args.servers.split(",")
    if unknown := [name for name in names if name not in SERVERS]:
        p.error(f"unknown servers: {', '.join(unknown)}")
    kinds = tuple(args.kinds.split(","))
    if unknown := [kind for kind in kinds if kind not in KINDS]:
        p.error(f"unknown clients: {', '.join(unknown)} (clients: {', '.join(KINDS)})")
    with tempfile.TemporaryDirectory(prefix="poetrynow-soak-") as workdir:
        running: list[Soaked] = []
        try:
            for name in names:
                if name in every:
                    running.append(start(every[name], args.clients, kinds, workdir))
            asyncio.run(soak(running, args))
            results = [result(soaked, args.rss_margin) for soaked in running]
        finally:
            for soaked in running:
                for competitor in (soaked.server, *soaked.helpers):
                    competitor.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results, args, poem)
    bad = [r for r in results if r["failures"] or not r["flat"]]
    return 1 if bad else 0


if __name__ == "__main__":
    run_main(main)
