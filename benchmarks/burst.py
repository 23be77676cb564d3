"""A cold burst: N simultaneous downloads from a server that has just started, then again warm.

Each round starts every competing server afresh, in turn, and sends it waves of N
``get-poetry --engine select`` downloads at once (kettle, 64 bytes every 0.5 s: a
5 s schedule). Wave 1 meets the cold server; the later waves a warm one. For each
wave: the command's own "Got" time against the schedule, the whole poems, and the
kernel's listen overflows and SYN retransmits during it (poetrynow.netcounters),
in a network namespace of the run's own where one can be had, so that nothing else
on the machine adds to them. Medians over the rounds; overflows, their largest.

    .venv/bin/python benchmarks/burst.py [--clients 10000,20000] [--rounds 3] [--waves 2]
        [--servers fast,plain,twistd] [--baseline COMMIT] [--backlog N] [--json]

``--baseline COMMIT`` adds ``slowpoetry --concurrent`` as it was at COMMIT. More
clients than one process's open-files limit can hold (this process lifts it as far
as it may) are split: as many copies of the server on one port (``--reuse-port``,
the kernel spreads the connects over their queues) and as many ``get-poetry``
processes, all started at once; the wave's time is the slowest client process's.
twistd has no ``--reuse-port``, so it sits out a split burst.
``--json`` prints each wave as a JSON line instead of the table (the burst test reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poetrynow import netcounters
from poetrynow.descriptors import raise_fd_limit
from poetrynow.poems import load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.tables import format_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from competitors import Competitor, ended_with_us, reaped, run_main, slowpoetry_servers
from fanout import got_line

BIN = Path(sys.executable).parent
OPTIONS = ["--quiet", "--num-bytes", "64", "--delay", "0.5"]
#: Seconds a wave's clients have to end: their own --timeout, and the schedule, and room.
WAVE_WITHIN = 180.0


def servers(name: str, args, baseline: Path | None, copies: int) -> list[Competitor]:
    """``copies`` of the server ``name``, fresh, sharing one port where there is more than one."""
    where = ["--listen", f"tcp:0:interface=127.0.0.1:backlog={args.backlog}"] if args.backlog else []
    if name == "twistd":  # twistd has no --reuse-port: one copy (run_all keeps it out of split bursts)
        command = [str(BIN / "twistd"), "-n", "--pidfile=", "slowpoetry", "--poem", "kettle"]
        return [Competitor("twistd slowpoetry", [*command, *OPTIONS, *where]).start()]
    options = [*OPTIONS, *(["--plain"] if name == "plain" else [])]
    if copies > 1:  # the kernel spreads the connects over the copies' queues, each the servers' own depth
        return slowpoetry_servers(copies, [*options, "--iface", "127.0.0.1"], baseline)
    return slowpoetry_servers(1, [*options, *where], baseline)


def wave(port: int, clients: int, copies: int = 1) -> dict:
    """N downloads at once, from ``copies`` client processes; their slowest 'Got' time."""
    before = netcounters.read()
    shares = [clients // copies + (i < clients % copies) for i in range(copies)]
    with contextlib.ExitStack() as files:
        outs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in shares]
        with reaped([]) as running:
            for share, out in zip(shares, outs, strict=True):
                running.append(
                    subprocess.Popen(
                        [str(BIN / "get-poetry"), "--engine", "select", "--timeout", "60"]
                        + [f"127.0.0.1:{port}"] * share,
                        stdout=out,
                        stderr=subprocess.DEVNULL,
                        env=ended_with_us(),
                    )
                )
            deadline = time.monotonic() + WAVE_WITHIN
            codes = [process.wait(max(0.0, deadline - time.monotonic())) for process in running]
        found = []
        for out in outs:
            out.seek(0)
            found.append(got_line(out.read()))
    counted = netcounters.since(before)
    if not all(found):
        return {"total": float("nan"), "whole": 0, "exit": max(codes), "counted": counted}
    return {
        "total": max(total for _, total in found),
        "whole": sum(whole for whole, _ in found),
        "exit": max(codes),
        "counted": counted,
    }


#: Descriptors a process keeps beside its connections (the listener, pipes, the poem).
SPARE = 1024


def connections_per_process() -> int:
    """The connections one process may hold: its open-files limit (lifted to the hard one), less SPARE."""
    limit = raise_fd_limit()
    if limit == resource.RLIM_INFINITY or limit < 0:
        return 1 << 20
    return max(1, limit - SPARE if limit > 2 * SPARE else limit // 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="10000,20000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--waves", type=int, default=2)
    p.add_argument("--servers", default="fast,plain,twistd")
    p.add_argument("--baseline", metavar="COMMIT")
    p.add_argument(
        "--backlog", type=int, default=None, help="the listen queue's depth (default: the servers')"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if (status := netcounters.run_isolated()) is not None:
        return status
    counts = [int(n) for n in args.clients.split(",")]
    per_process = connections_per_process()
    names = args.servers.split(",")
    with tempfile.TemporaryDirectory(prefix="poetrynow-burst-") as workdir:
        baseline = None
        if args.baseline:
            from servers import baseline_checkout

            baseline = baseline_checkout(args.baseline, workdir)
            names.insert(0, "baseline")
        try:
            rows = run_all(counts, names, args, baseline, per_process)
        finally:
            if baseline is not None:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(baseline.parent)], capture_output=True
                )
    if not args.json:
        print_table(rows, args)
    return 0


def run_all(
    counts: list[int], names: list[str], args, baseline: Path | None, per_process: int
) -> list[tuple]:
    schedule = PoemSchedule(len(load_poem("kettle").data), 64, 0.5)
    rows = []
    for clients in counts:
        copies = -(-clients // per_process)
        here = [n for n in names if copies == 1 or n != "twistd"]
        runs: dict[str, list[list[dict]]] = {name: [] for name in here}
        for round_ in range(args.rounds):
            for name in here:  # side by side: every server, fresh, in each round
                started = servers(name, args, baseline, copies)
                port = started[0].port
                try:
                    waves = []
                    for number in range(args.waves):
                        waves.append(wave(port, clients, copies))
                        if args.json:
                            line = {"server": name, "clients": clients, "wave": number + 1, "copies": copies}
                            print(json.dumps({**line, **waves[-1]}), flush=True)
                        time.sleep(1)  # the closed connections drain
                finally:
                    for server in started:
                        server.stop()
                runs[name].append(waves)
                first = waves[0]
                print(
                    f"{clients} clients, {name} x{copies}, round {round_ + 1}: cold {first['total']:.2f} s, "
                    f"{netcounters.shown(first['counted'], 'listen overflows')} overflows",
                    file=sys.stderr,
                    flush=True,
                )
        for name in here:
            rows.append(row(clients, name if copies == 1 else f"{name} x{copies}", runs[name], schedule))
    return rows


def row(clients: int, name: str, runs: list[list[dict]], schedule: PoemSchedule) -> tuple:
    cold = [r[0] for r in runs]
    warm = [w for r in runs for w in r[1:]]

    def ratio(waves: list[dict]) -> str:
        return f"{statistics.median(w['total'] for w in waves) / schedule.duration:.3f}" if waves else "-"

    def most(waves: list[dict], label: str) -> str:
        return netcounters.most([w["counted"] for w in waves], label)

    return (
        f"{clients}",
        name,
        ratio(cold),
        f"{min(w['whole'] for w in cold)}/{clients}",
        most(cold, "listen overflows"),
        most(cold, "SYN retransmits"),
        ratio(warm),
        most(warm, "listen overflows"),
    )


def print_table(rows: list[tuple], args) -> None:
    print(
        f"kettle at 64 bytes every 0.5 s (a 5 s schedule), N 'get-poetry --engine select' at once; a fresh "
        f"server per round, {args.rounds} rounds, {args.waves} waves each (wave 1 cold). total/schedule: "
        f"medians of the command's 'Got' time; overflows and SYN retransmits: the most in a wave.\n"
    )
    headings = (
        "clients",
        "server",
        "cold",
        "cold whole",
        "cold overflows",
        "cold SYN rtx",
        "warm",
        "warm overflows",
    )
    print(format_table(headings, rows, right={0, 2, 3, 4, 5, 6, 7}))


if __name__ == "__main__":
    run_main(main)
