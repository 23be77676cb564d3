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
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poetrynow import netcounters
from poetrynow.poems import load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.tables import format_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import got_line

BIN = Path(sys.executable).parent
SERVING = re.compile(r"Serving \S+ on .*?(\d+)\.$")
OPTIONS = ["--quiet", "--num-bytes", "64", "--delay", "0.5"]


def server_command(name: str, backlog: int | None, baseline: Path | None) -> tuple[list[str], dict | None]:
    where = ["--listen", f"tcp:0:interface=127.0.0.1:backlog={backlog}"] if backlog else []
    if name == "twistd":
        return [
            str(BIN / "twistd"),
            "-n",
            "--pidfile=",
            "slowpoetry",
            "--poem",
            "kettle",
            *OPTIONS,
            *where,
        ], None
    command = [sys.executable, "-m", "poetrynow.cli.slowpoetry", "kettle", "--concurrent", *OPTIONS, *where]
    if name == "plain":
        command.append("--plain")
    return command, (dict(os.environ, PYTHONPATH=str(baseline)) if name == "baseline" else None)


def start_all(name: str, args, baseline: Path | None, copies: int) -> tuple[list[subprocess.Popen], int]:
    """``copies`` of the server ``name``, sharing one port where there is more than one."""
    command, env = server_command(name, args.backlog, baseline)
    if copies == 1:
        process, port = start(command, env)
        return [process], port
    shared = [c for c in command if not c.startswith("tcp:")]
    shared = [c for c in shared if c != "--listen"] + ["--iface", "127.0.0.1", "--reuse-port"]
    with socket.socket() as probe:  # a free port; --reuse-port needs one named
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(copies):
            processes.append(start([*shared, "--port", str(port)], env)[0])
    except BaseException:
        stop(processes)
        raise
    return processes, port


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


def start(command: list[str], env: dict | None) -> tuple[subprocess.Popen, int]:
    """The server, and its port from the first line that names one (twistd logs a few before)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if found := SERVING.search(line.strip()):
            # twistd goes on logging: its lines are drained to nowhere so that it never blocks.
            subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
            return process, int(found[1])
    raise SystemExit(f"{command[0]} did not start (exit {process.wait()})")


def wave(port: int, clients: int, copies: int = 1) -> dict:
    """N downloads at once, from ``copies`` client processes; their slowest 'Got' time."""
    before = netcounters.read()
    shares = [clients // copies + (i < clients % copies) for i in range(copies)]
    with contextlib.ExitStack() as files:
        outs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in shares]
        running = [
            subprocess.Popen(
                [str(BIN / "get-poetry"), "--engine", "select", "--timeout", "60"]
                + [f"127.0.0.1:{port}"] * share,
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
            for share, out in zip(shares, outs, strict=True)
        ]
        codes = [process.wait() for process in running]
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


def lift_fd_limit(clients: int) -> int:
    """Lift the open-files limit towards ``clients`` and some; the connections one process may hold."""
    want = clients + SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] - SPARE


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
    per_process = lift_fd_limit(max(counts))
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
                processes, port = start_all(name, args, baseline, copies)
                try:
                    waves = []
                    for number in range(args.waves):
                        waves.append(wave(port, clients, copies))
                        if args.json:
                            line = {"server": name, "clients": clients, "wave": number + 1, "copies": copies}
                            print(json.dumps({**line, **waves[-1]}), flush=True)
                        time.sleep(1)  # the closed connections drain
                finally:
                    stop(processes)
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
    sys.exit(main())
