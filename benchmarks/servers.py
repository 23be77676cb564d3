"""Server benchmarks: fast servers head to head, and the slow server at scale.

Over 300 lines because each benchmark runs its competitors side by side in one run:
the servers, their load and the tables live together so a figure and its method cannot
drift apart.

Part 1, fast servers: fastpoetry (Twisted) against a plain asyncio server, the
same on uvloop, and nginx's stream ``return`` (each when installed), run in turn
in every round against the same load generator (benchmarks/loadgen.py, its own
process). For each: poems per second, and the server's CPU microseconds per poem,
read from /proc/PID/stat (utime + stime, all of the server's processes) before and
after the load. The figure to compare is CPU per poem: the load generator shares
the machine's two cores, so poems per second is capped by it for the fastest
servers.

Part 2, the concurrent slow server: ``slowpoetry --concurrent`` with N clients
at once (the select engine, 10,000 to a process), reporting how late each
client's last byte arrives against its schedule, measured from the client's own
connect call, and the server's CPU. Past 10,000 clients the server is as many
processes sharing the port (``--reuse-port``): one process cannot hold more
connections than its open-file limit.

``--baseline COMMIT`` runs the servers as they were at COMMIT beside today's,
round by round, in both parts.

    .venv/bin/python benchmarks/servers.py [--rounds 3] [--seconds 3] [--clients 1000,10000,20000]
        [--poem FILE[,FILE]] [--part fast|slow|all] [--baseline COMMIT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poetrynow import netcounters
from poetrynow.address import Address
from poetrynow.cli.common import raise_fd_limit
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import Failed, Finished, Started
from poetrynow.poems import load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.stopping import end_with_parent
from poetrynow.tables import format_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from competitors import Competitor, ended_with_us, reaped, run_main, slowpoetry_servers

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def poem_path(name: str) -> tuple[str, bytes]:
    """The poem to serve, as fastpoetry names it and as bytes: a bundled name or a file path."""
    poem = load_poem(name)
    return name, poem.data


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def nginx_competitor(poem: bytes, workdir: str) -> Competitor | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    module = "/usr/lib/nginx/modules/ngx_stream_module.so"
    if not nginx or b"$" in poem:
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = poem.decode("utf-8").replace("\\", "\\\\").replace("'", "\\'")
    load = f"load_module {module};\n" if os.path.exists(module) else ""
    conf = Path(workdir) / "nginx.conf"
    conf.write_text(
        f"{load}daemon off;\nworker_processes 1;\npid {workdir}/nginx.pid;\nerror_log stderr error;\n"
        f"events {{ worker_connections 8192; }}\n"
        f"stream {{ server {{ listen 127.0.0.1:{port} backlog=4096; return '{text}'; }} }}\n"
    )
    return Competitor("nginx stream return", [nginx, "-p", workdir, "-c", str(conf), "-e", "stderr"], port)


def fast_competitors(path: str, poem: bytes, workdir: str) -> list[Competitor]:
    poem_file = Path(workdir) / "poem.txt"
    poem_file.write_bytes(poem)
    found = [
        Competitor("fastpoetry --quiet", [str(BIN / "fastpoetry"), str(poem_file), "--quiet"]),
        Competitor(
            "fastpoetry --plain --quiet", [str(BIN / "fastpoetry"), str(poem_file), "--plain", "--quiet"]
        ),
        Competitor(
            "fastpoetry, log to a file",
            [str(BIN / "fastpoetry"), str(poem_file)],
            log=Path(workdir) / "fastpoetry.log",
        ),
        Competitor(
            "twistd fastpoetry, its log file",
            [str(BIN / "twistd"), "-n", "--pidfile=", "fastpoetry", "--poem", str(poem_file)],
            log=Path(workdir) / "twistd.log",
        ),
        Competitor("asyncio", [sys.executable, str(HERE / "asyncio_server.py"), str(poem_file)]),
        Competitor(
            "Python epoll loop (prototype)", [sys.executable, str(HERE / "epoll_server.py"), str(poem_file)]
        ),
    ]
    try:
        import uvloop  # noqa: F401

        found.append(
            Competitor(
                "asyncio + uvloop",
                [sys.executable, str(HERE / "asyncio_server.py"), str(poem_file), "--uvloop"],
            )
        )
    except ImportError:
        print("uvloop not installed: pip install uvloop to compare it", file=sys.stderr)
    nginx = nginx_competitor(poem, workdir)
    if nginx:
        found.append(nginx)
    else:
        print("nginx not installed: apt-get install nginx libnginx-mod-stream to compare it", file=sys.stderr)
    return found


def proxy_competitors(upstream: int, workdir: str) -> list[Competitor]:
    """poetry-proxy in front of the first fastpoetry, its cache filled before the rounds begin."""
    found = [
        Competitor("poetry-proxy hit --quiet", [str(BIN / "poetry-proxy"), str(upstream), "--quiet"]),
        Competitor(
            "poetry-proxy --plain hit --quiet",
            [str(BIN / "poetry-proxy"), str(upstream), "--plain", "--quiet"],
        ),
        Competitor(
            "poetry-proxy hit, log to a file",
            [str(BIN / "poetry-proxy"), str(upstream)],
            log=Path(workdir) / "proxy.log",
        ),
    ]
    return warmed(found)


def warmed(proxies: list[Competitor]) -> list[Competitor]:
    """Start each proxy and fill its cache: the one fetch upstream, before the rounds begin."""
    import socket

    for proxy in proxies:
        proxy.start()
        with socket.create_connection(("127.0.0.1", proxy.port)) as warm:
            while warm.recv(65536):
                pass
    return proxies


def load(competitor: Competitor, seconds: float, concurrency: int, size: int) -> tuple[float, float]:
    """Poems per second and server CPU microseconds per poem, for one round."""
    before = cpu_seconds(competitor.pids())
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            str(competitor.port),
            str(seconds),
            str(concurrency),
            str(size),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    after = cpu_seconds(competitor.pids())
    counts = json.loads(result.stdout)
    if counts["short"] or counts["errors"]:
        print(f"{competitor.name}: {counts['short']} short poems, {counts['errors']} errors", file=sys.stderr)
    poems = counts["whole"]
    return poems / counts["seconds"], (after - before) / poems * 1e6


def baseline_fast_competitors(baseline: str, workdir: str, upstream: int) -> list[Competitor]:
    """fastpoetry (both editions) and a proxy hit as they were at ``baseline``, beside today's."""
    env = dict(os.environ, PYTHONPATH=str(baseline_checkout(baseline, workdir)))
    poem_file = str(Path(workdir) / "poem.txt")
    found = [
        Competitor(f"fastpoetry --quiet @{baseline}", [*module("fastpoetry"), poem_file, "--quiet"], env=env),
        Competitor(
            f"fastpoetry --plain --quiet @{baseline}",
            [*module("fastpoetry"), poem_file, "--plain", "--quiet"],
            env=env,
        ),
    ]
    proxy = Competitor(
        f"poetry-proxy hit --quiet @{baseline}", [*module("poetryproxy"), str(upstream), "--quiet"], env=env
    )
    return [c.start() for c in found] + warmed([proxy])


def module(command: str) -> list[str]:
    """A command run as ``python -m``, so that PYTHONPATH decides which code runs."""
    return [sys.executable, "-m", f"poetrynow.cli.{command}"]


def fast_part(rounds: int, seconds: float, concurrency: int, poem_name: str, baseline: str | None) -> None:
    path, poem = poem_path(poem_name)
    with tempfile.TemporaryDirectory(prefix="poetrynow-bench-") as workdir:
        competitors = [c.start() for c in fast_competitors(path, poem, workdir)]
        competitors[1:1] = proxy_competitors(competitors[0].port, workdir)
        if baseline:
            competitors[1:1] = baseline_fast_competitors(baseline, workdir, competitors[0].port)
        try:
            rates = {c.name: [] for c in competitors}
            cpus = {c.name: [] for c in competitors}
            counts: dict[str, list[dict[str, int] | None]] = {c.name: [] for c in competitors}
            for round_ in range(rounds):
                for competitor in competitors:
                    before = netcounters.read()
                    rate, cpu = load(competitor, seconds, concurrency, len(poem))
                    counts[competitor.name].append(netcounters.since(before))
                    rates[competitor.name].append(rate)
                    cpus[competitor.name].append(cpu)
                    print(
                        f"round {round_ + 1}: {competitor.name}: {rate:.0f} poems/s, {cpu:.1f} us/poem, "
                        f"{netcounters.shown(counts[competitor.name][-1], 'listen overflows')} "
                        "listen overflows",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            for competitor in competitors:
                competitor.stop()
    # Each round loads every server in turn, so a ratio is taken within a round, then the median.
    references = [name for name in ("nginx stream return", "fastpoetry --quiet") if name in cpus]
    rows = []
    for name in rates:
        ratios = [
            statistics.median(c / r for c, r in zip(cpus[name], cpus[reference], strict=True))
            for reference in references
        ]
        rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
        overflows, retransmits = (
            netcounters.most(counts[name], label) for label in ("listen overflows", "SYN retransmits")
        )
        rows.append(
            (name, f"{rate:.0f}", f"{cpu:.1f}", *(f"{ratio:.2f}" for ratio in ratios), overflows, retransmits)
        )
    print(
        f"Fast servers: a {len(poem)}-byte poem, {concurrency} clients looping for {seconds:g} s, "
        f"{rounds} rounds, medians (of the per-round ratios, too); overflows, SYN rtx: the kernel's listen "
        f"overflows and SYN retransmits, the most in a round.\n"
    )
    headings = (
        "server",
        "poems/s",
        "CPU us/poem",
        *(f"CPU / {reference}" for reference in references),
        "overflows",
        "SYN rtx",
    )
    print(format_table(headings, rows, right=set(range(1, len(headings)))))
    print()


CLIENTS_PER_PROCESS = 10_000  # under the open-file limit (20,000 here), with room to spare


def slow_child(port: int, clients: int) -> None:
    """One client process: the select engine with ``clients`` downloads; prints what it saw as JSON.

    Times are time.monotonic, which every process on the machine shares.
    """
    end_with_parent()  # a benchmark killed outright takes its clients with it
    raise_fd_limit()
    poem = load_poem("kettle").data
    events: list = []
    run_engine("select", [Address("127.0.0.1", port)] * clients, events.append, EngineOptions(timeout=60))
    started = {e.task: e.t for e in events if isinstance(e, Started)}
    finished = {e.task: e.t for e in events if isinstance(e, Finished) and e.poem == poem}
    print(
        json.dumps(
            {
                "late_from_connect": [finished[t] - started[t] for t in finished],
                "failed": sum(1 for e in events if isinstance(e, Failed)),
                "first": min(started.values()),
                "last": max(finished.values(), default=0.0),
            }
        )
    )


def slow_servers(
    count: int, num_bytes: int, delay: float, source: Path | None, extra: tuple[str, ...] = ()
) -> list[Competitor]:
    """``count`` slowpoetry --concurrent processes on one port; ``extra``: more options (``--plain``)."""
    options = ["--quiet", *extra, "--num-bytes", str(num_bytes), "--delay", str(delay)]
    return slowpoetry_servers(count, options, source)


def slow_round(
    clients: int, num_bytes: int, delay: float, source: Path | None, extra: tuple[str, ...] = ()
) -> list[dict]:
    """Fresh servers, then two waves of clients spread over processes: the cold one, then a warm one."""
    processes = -(-clients // CLIENTS_PER_PROCESS)
    servers = slow_servers(processes, num_bytes, delay, source, extra)
    try:
        pids = [pid for server in servers for pid in server.pids()]
        waves = []
        for _ in range(2):
            waves.append(slow_wave(servers[0].port, clients, processes, pids, num_bytes, delay))
            time.sleep(1)  # the closed connections drain
    finally:
        for server in servers:
            server.stop()
    return waves


def slow_wave(port: int, clients: int, processes: int, pids: list[int], num_bytes: int, delay: float) -> dict:
    """One wave: lateness, the servers' CPU, and what the kernel counted during it."""
    before, counters = cpu_seconds(pids), netcounters.read()
    with reaped([]) as children:
        for _ in range(processes):
            children.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--slow-child", str(port), str(clients // processes)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=ended_with_us(),
                )
            )
        results = [json.loads(child.communicate(timeout=300)[0]) for child in children]
    server_cpu, counted = cpu_seconds(pids) - before, netcounters.since(counters)
    schedule = PoemSchedule(len(load_poem("kettle").data), num_bytes, delay)
    late = sorted(t - schedule.duration for r in results for t in r["late_from_connect"])
    return {
        "whole": len(late),
        "failed": sum(r["failed"] for r in results),
        "median": statistics.median(late),
        "p99": late[int(len(late) * 0.99) - 1],
        "worst": late[-1],
        "all_done": max(r["last"] for r in results) - min(r["first"] for r in results),
        "cpu": server_cpu,
        "servers": processes,
        "counted": counted,
    }


def baseline_checkout(ref: str, workdir: str) -> Path:
    """The project at ``ref`` (a commit), checked out beside this one; its src/ folder."""
    target = Path(workdir) / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(target), ref], check=True, capture_output=True)
    return target / "src"


def slow_part(counts: list[int], num_bytes: int, delay: float, rounds: int, baseline: str | None) -> None:
    raise_fd_limit()
    schedule = PoemSchedule(len(load_poem("kettle").data), num_bytes, delay)
    rows = []
    with tempfile.TemporaryDirectory(prefix="poetrynow-bench-") as workdir:
        old = baseline_checkout(baseline, workdir) if baseline else None
        try:
            for clients in counts:
                # The fast edition, the plain one beside it, and the baseline when asked for.
                versions: list[tuple[str, Path | None, tuple[str, ...]]] = [
                    ("this", None, ()),
                    ("this, --plain", None, ("--plain",)),
                ]
                if old is not None and clients <= CLIENTS_PER_PROCESS:
                    versions.insert(0, (baseline, old, ()))
                runs: dict[str, list[list[dict]]] = {name: [] for name, _, _ in versions}
                for round_ in range(rounds):
                    for name, source, extra in versions:  # side by side: each round runs every version
                        waves = slow_round(clients, num_bytes, delay, source, extra)
                        runs[name].append(waves)
                        for wave, run in zip(("cold", "warm"), waves, strict=True):
                            print(
                                f"{clients} clients, {name}, round {round_ + 1}, {wave}: "
                                f"worst {run['worst'] * 1000:.0f} ms late, server CPU {run['cpu']:.2f} s, "
                                f"{netcounters.shown(run['counted'], 'listen overflows')} listen overflows",
                                file=sys.stderr,
                                flush=True,
                            )
                for name, _, _ in versions:
                    for number, wave in enumerate(("cold", "warm")):
                        rows.append(slow_row(clients, name, wave, [r[number] for r in runs[name]], schedule))
        finally:
            if old is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(old.parent)], capture_output=True)
    print(
        f"Concurrent slow server: kettle ({schedule.size} bytes) at {num_bytes} bytes every {delay:g} s "
        f"= {schedule.chunks} chunks, schedule {schedule.duration:.2f} s per client; clients: the select "
        f"engine, {CLIENTS_PER_PROCESS:,} per process; more clients than that get as many server processes "
        f"sharing the port (--reuse-port). 'late': last byte, minus the client's connect call, minus the "
        f"schedule. Fresh servers in each round: wave 'cold' is their first, 'warm' the next. overflows, "
        f"SYN rtx: the kernel's listen overflows and SYN retransmits in a wave, the most of the rounds. "
        f"Medians of {rounds} rounds.\n"
    )
    print(
        format_table(
            (
                "clients",
                "server",
                "wave",
                "processes",
                "whole",
                "failed",
                "median late",
                "p99 late",
                "worst late",
                "worst/schedule",
                "server CPU",
                "overflows",
                "SYN rtx",
            ),
            rows,
            right={0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
        )
    )


def slow_row(clients: int, name: str, wave: str, done: list[dict], schedule: PoemSchedule) -> tuple:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in done)

    return (
        f"{clients}",
        name,
        wave,
        f"{done[0]['servers']}",
        f"{min(r['whole'] for r in done)}",
        f"{max(r['failed'] for r in done)}",
        f"{median('median') * 1000:.0f} ms",
        f"{median('p99') * 1000:.0f} ms",
        f"{median('worst') * 1000:.0f} ms",
        f"{median('worst') / schedule.duration * 100:.1f}%",
        f"{median('cpu'):.2f} s",
        netcounters.most([r["counted"] for r in done], "listen overflows"),
        netcounters.most([r["counted"] for r in done], "SYN retransmits"),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--clients", default="1000,10000,20000")
    p.add_argument("--num-bytes", type=int, default=64)
    p.add_argument("--delay", type=float, default=1.0)
    p.add_argument("--part", choices=["fast", "slow", "all"], default="all")
    p.add_argument(
        "--baseline",
        metavar="COMMIT",
        help="also run the servers as they were at COMMIT (a git worktree), side by side "
        "(the slow one up to 10,000 clients)",
    )
    p.add_argument("--slow-child", nargs=2, type=int, metavar=("PORT", "CLIENTS"), help=argparse.SUPPRESS)
    p.add_argument(
        "--poem",
        default="lighthouse",
        help="the fast servers' poems, comma-separated: bundled names or file paths (default: lighthouse)",
    )
    args = p.parse_args()
    if args.slow_child:
        slow_child(*args.slow_child)
        return 0
    if (status := netcounters.run_isolated()) is not None:
        return status
    if args.part in ("fast", "all"):
        for poem in args.poem.split(","):
            fast_part(args.rounds, args.seconds, args.concurrency, poem, args.baseline)
    if args.part in ("slow", "all"):
        slow_part(
            [int(n) for n in args.clients.split(",")], args.num_bytes, args.delay, args.rounds, args.baseline
        )
    return 0


if __name__ == "__main__":
    run_main(main)
