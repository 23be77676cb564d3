"""Fan-out: every concurrent engine against N simultaneous connections to one slow server.

One ``slowpoetry --concurrent`` server per N (kettle, 64 bytes every 0.5 s: ten
chunks, a 5 s schedule per client). In each round every concurrent engine, in
turn, downloads N copies of the poem at once, each in a fresh process of its own
so its CPU time (user + system, all threads) is its alone. Reported per engine:
the total (first connect call to last poem) against the schedule, and CPU seconds;
medians over the rounds. Before the rounds, select (the engine that connects fastest) meets the server cold
(its first connections since it started), once, on a row of its own: a cold server
that falls behind is not averaged away by the warm rounds. Every run also counts the
kernel's listen overflows and SYN retransmits during it (poetrynow.netcounters: the
most in a run; "n/a" off Linux), in a network namespace of the benchmark's own where
one can be had.

    .venv/bin/python benchmarks/fanout.py [--clients 100,1000,5000] [--rounds 3] [--command]

``--engines`` may also name the prototypes of benchmarks/prototypes.py
(``twisted-bare``, ``asyncio-protocols``), which go around an engine's layer of
per-connection objects; they run only as engines, not as the command.

With ``--command`` each engine runs as the real ``get-poetry --engine E`` command
with its default lines written to a file, so the reporting path is measured too;
failures are counted by the reason their line gives.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poetrynow import netcounters
from poetrynow.address import Address
from poetrynow.cli.common import raise_fd_limit
from poetrynow.clients import ENGINES, EngineOptions, load_engine, run_engine
from poetrynow.collector import few_collections
from poetrynow.events import Failed, Finished, Started
from poetrynow.poems import load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.stopping import end_with_parent
from poetrynow.tables import format_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from competitors import ended_with_us, run_main, slowpoetry_servers
from prototypes import PROTOTYPES

BIN = Path(sys.executable).parent
POEM = "kettle"
ORDER = [name for name, info in ENGINES.items() if info.concurrent]


def child(engine: str, port: int, clients: int) -> None:
    """Run one engine once and print what it measured as one JSON line."""
    end_with_parent()  # a benchmark killed outright takes its runs with it
    raise_fd_limit()
    poem = load_poem(POEM).data
    first = None
    last = 0.0
    whole = failed = 0

    def sink(event) -> None:
        nonlocal first, last, whole, failed
        if isinstance(event, Started) and first is None:
            first = event.t
        elif isinstance(event, Finished):
            whole += event.poem == poem
            last = max(last, event.t)
        elif isinstance(event, Failed):
            failed += 1

    addresses = [Address("127.0.0.1", port)] * clients
    if engine in PROTOTYPES:
        prototype = PROTOTYPES[engine]
        prototype([], sink, EngineOptions())  # imports and first use are not its running cost
        first, last, whole, failed = None, 0.0, 0, 0
        before = resource.getrusage(resource.RUSAGE_SELF)
        with few_collections():
            prototype(addresses, sink, EngineOptions(timeout=60))
    else:
        load_engine(engine)  # imports are not the engine's running cost
        before = resource.getrusage(resource.RUSAGE_SELF)
        run_engine(engine, addresses, sink, EngineOptions(timeout=60))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"total": last - (first or 0.0), "cpu": cpu, "whole": whole, "failed": failed}))


def measure(engine: str, port: int, clients: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(port), str(clients)],
        capture_output=True,
        text=True,
        timeout=600,
        env=ended_with_us(),
    )
    if result.returncode != 0:
        raise SystemExit(f"{engine} at {clients} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.splitlines()[-1])


GOT = re.compile(r"^Got (\d+) poems? in (\d+):(\d+):([\d.]+)", re.MULTILINE)


def got_line(text: str) -> tuple[int, float] | None:
    """The poems whole and the seconds that get-poetry's closing 'Got' line gives, if it wrote one."""
    got = GOT.search(text)
    if got is None:
        return None
    return int(got[1]), int(got[2]) * 3600 + int(got[3]) * 60 + float(got[4])


FAILED = re.compile(r"^Task \d+: failed to get poetry from \S+: (.*)$", re.MULTILINE)


def measure_command(engine: str, port: int, clients: int) -> dict:
    """Run the real ``get-poetry`` command, its default lines to a file, as a user would."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        code = subprocess.run(
            [str(BIN / "get-poetry"), "--engine", engine, "--timeout", "60"]
            + [f"127.0.0.1:{port}"] * clients,
            stdout=out,
            stderr=err,
            timeout=600,
            env=ended_with_us(),
        ).returncode
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        text, problems = out.read(), err.read()
    got = got_line(text)
    if got is None:
        raise SystemExit(f"{engine} at {clients}: no 'Got' line (exit {code}): {problems.strip()[-500:]}")
    whole, total = got
    reasons = collections.Counter(FAILED.findall(problems))
    return {
        "total": total,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "whole": whole,
        "failed": sum(reasons.values()),
        "reasons": dict(reasons),
        "exit": code,
    }


HEADINGS = (
    "clients",
    "engine",
    "total",
    "total/schedule",
    "over",
    "CPU",
    "CPU per poem",
    "whole poems",
    "failed",
    "overflows",
    "SYN rtx",
)


def counted(measure, engine: str, port: int, clients: int) -> dict:
    """One run, with what the kernel counted during it."""
    before = netcounters.read()
    run = measure(engine, port, clients)
    run["counted"] = netcounters.since(before)
    return run


def fanout_row(clients: int, engine: str, runs: list[dict], schedule: PoemSchedule) -> tuple:
    total = statistics.median(r["total"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    return (
        str(clients),
        engine,
        f"{total:.2f} s",
        f"{total / schedule.duration:.3f}",
        f"{(total / schedule.duration - 1) * 100:+.1f}%",
        f"{cpu:.2f} s",
        f"{cpu / clients * 1e3:.2f} ms",
        f"{min(r['whole'] for r in runs)}/{clients}",
        str(max(r["failed"] for r in runs)),
        netcounters.most([r["counted"] for r in runs], "listen overflows"),
        netcounters.most([r["counted"] for r in runs], "SYN retransmits"),
    )


def said(run: dict) -> str:
    """One run in a line, as it ends."""
    reasons = f", failures by reason: {run['reasons']}" if run.get("reasons") else ""
    overflows = netcounters.shown(run["counted"], "listen overflows")
    return f"{run['total']:.2f} s, {run['whole']} whole, {overflows} listen overflows{reasons}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="100,1000,5000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--num-bytes", type=int, default=64)
    p.add_argument("--delay", type=float, default=0.5)
    p.add_argument("--engines", default=",".join(ORDER))
    p.add_argument(
        "--command",
        action="store_true",
        help="run the real get-poetry command (its default lines to a file) instead of the engine alone",
    )
    p.add_argument("--child", nargs=3, metavar=("ENGINE", "PORT", "CLIENTS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0

    if (status := netcounters.run_isolated()) is not None:
        return status
    raise_fd_limit()
    engines = args.engines.split(",")
    schedule = PoemSchedule(len(load_poem(POEM).data), args.num_bytes, args.delay)
    how = measure_command if args.command else measure
    # select connects fastest, so its burst is the one a slow accept shows first.
    cold_engine = "select" if "select" in engines else engines[0]
    rows = []
    for clients in [int(n) for n in args.clients.split(",")]:
        options = ["--quiet", "--num-bytes", str(args.num_bytes), "--delay", str(args.delay)]
        server = slowpoetry_servers(1, options)[0]
        port = server.port
        runs: dict[str, list[dict]] = {engine: [] for engine in engines}
        try:
            cold = counted(how, cold_engine, port, clients)
            print(f"{clients} clients: {cold_engine} on the cold server: {said(cold)}", file=sys.stderr)
            time.sleep(0.5)
            for round_number in range(args.rounds):
                for engine in engines:  # side by side: each round runs every engine in turn
                    run = counted(how, engine, port, clients)
                    runs[engine].append(run)
                    print(f"{clients} clients, {engine}: {said(run)}", file=sys.stderr, flush=True)
                    time.sleep(0.5)  # let the server's closed connections drain
                print(f"{clients} clients: round {round_number + 1} done", file=sys.stderr, flush=True)
        finally:
            server.stop()
        rows.append(fanout_row(clients, f"{cold_engine}, cold server", [cold], schedule))
        rows.extend(fanout_row(clients, engine, runs[engine], schedule) for engine in engines)
    print(
        f"{POEM} ({schedule.size} bytes) at {args.num_bytes} bytes every {args.delay:g} s: "
        f"{schedule.chunks} chunks, schedule {schedule.duration:.2f} s per connection, all connections "
        f"at once to one 'slowpoetry --concurrent'. Medians of {args.rounds} rounds; each engine run in a "
        f"fresh process; the 'cold server' row is one run, before the rounds, on a server that has just "
        f"started. overflows, SYN rtx: the kernel's listen overflows and SYN retransmits, the most in a "
        f"run. total: first connect call to last poem"
        + (
            " (the command's own 'Got' line; CPU includes its start-up); lines to a file.\n"
            if args.command
            else ".\n"
        )
    )
    print(
        format_table(
            HEADINGS,
            rows,
            right={0, 2, 3, 4, 5, 6, 7, 8, 9, 10},
        )
    )
    return 0


if __name__ == "__main__":
    run_main(main)
