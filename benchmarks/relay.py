"""Relay benchmarks: ``poetrynow faults`` beside a direct connection, and at 10,000 connections.

Part 1, throughput: one upstream process sends ``--megabytes`` MiB to each client
as fast as it can; each round downloads it once directly and once through a relay
with no toxics, in turn, so that both meet the same machine. For each: MB/s, and
for the relay its CPU milliseconds per MiB (utime + stime from /proc). While the
relayed download runs, a thread times ``GET /proxies``: the API shares the reactor
with the bytes, and toxiproxy's users report hangs there.

Part 2, idle connections: ``--connections`` clients held open through one relay to
an upstream that holds them too. The relay's RSS before and after (per
connection), its CPU while they sit idle for ``--idle`` seconds, the API's
``GET /proxies`` response time (median and worst of ``--requests``), and the time
to add a toxic, and to remove it, on every open connection. Each relayed
connection costs the relay two descriptors, so its open-files limit caps the count:
the number used is printed when it is below the one asked for.

    .venv/bin/python benchmarks/relay.py [--rounds 3] [--megabytes 200] [--connections 10000]
        [--idle 5] [--requests 200] [--part throughput|idle|all]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from poetrynow.cli.common import raise_fd_limit
from poetrynow.tables import format_table
from servers import cpu_seconds

BIN = Path(sys.executable).parent
MiB = 1 << 20

#: The upstream, a process of its own: ``send N`` sends N MiB to each client and closes;
#: ``hold`` accepts and keeps every client, saying nothing.
UPSTREAM = r"""
import socket, sys, threading
mode, size = sys.argv[1], int(sys.argv[2])
server = socket.create_server(("127.0.0.1", 0), backlog=4096)
print(server.getsockname()[1], flush=True)
block, held = b"x" * (1 << 20), []
def send(conn):
    with conn:
        for _ in range(size):
            conn.sendall(block)
while True:
    conn, _ = server.accept()
    if mode == "send":
        threading.Thread(target=send, args=(conn,), daemon=True).start()
    else:
        held.append(conn)
"""


class Process:
    """A child process whose first line the benchmark reads; stopped with SIGTERM."""

    def __init__(self, argv: list[str]):
        # Its stderr is the stop's one line, or a warning: not the benchmark's output.
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def upstream(*args: str) -> tuple[Process, int]:
    child = Process([sys.executable, "-c", UPSTREAM, *args])
    return child, int(child.first_line)


class Faults(Process):
    """``poetrynow faults`` on a free port, and the API calls the benchmark makes."""

    def __init__(self):
        super().__init__([str(BIN / "poetrynow"), "faults", "--api", "127.0.0.1:0", "--quiet"])
        if not self.first_line.startswith("Faults API on "):
            raise RuntimeError(f"poetrynow faults did not start: {self.first_line!r}")
        self.url = self.first_line.split(" on ", 1)[1].strip().rstrip("/")

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def relay(self, name: str, port: int) -> int:
        created = self.call("POST", "/proxies", {"name": name, "upstream": f"127.0.0.1:{port}"})
        return int(created["listen"].rsplit(":", 1)[1])

    def timed(self, method: str, path: str, body=None) -> float:
        started = time.perf_counter()
        self.call(method, path, body)
        return time.perf_counter() - started


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def download(port: int) -> tuple[int, float]:
    """Every byte the server at ``port`` sends, counted, not kept; the seconds it took."""
    buffer = bytearray(MiB)
    total = 0
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while received := sock.recv_into(buffer):
            total += received
    return total, time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def throughput(args: argparse.Namespace) -> None:
    source, source_port = upstream("send", str(args.megabytes))
    faults = Faults()
    try:
        relay_port = faults.relay("bulk", source_port)
        rates: dict[str, list[float]] = {"direct": [], "relayed": []}
        cpu_per_mib: list[float] = []
        api_times: list[float] = []
        for _ in range(args.rounds):
            size, seconds = download(source_port)
            rates["direct"].append(size / MiB / seconds)
            stop = threading.Event()

            def poll_api(stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    api_times.append(faults.timed("GET", "/proxies"))

            poller = threading.Thread(target=poll_api)
            before = cpu_seconds([faults.pid])
            poller.start()
            relayed, seconds = download(relay_port)
            stop.set()
            poller.join()
            cpu = cpu_seconds([faults.pid]) - before
            if relayed != size:
                raise RuntimeError(f"the relay delivered {relayed} bytes of {size}")
            rates["relayed"].append(size / MiB / seconds)
            cpu_per_mib.append(cpu * 1000 / (size / MiB))
    finally:
        faults.stop()
        source.stop()
    direct, relayed = statistics.median(rates["direct"]), statistics.median(rates["relayed"])
    print(f"\nThroughput: {args.megabytes} MiB a download, {args.rounds} rounds, medians")
    rows = [
        ("direct", f"{direct:.0f} MiB/s", "-"),
        ("relay, no toxics", f"{relayed:.0f} MiB/s", f"{statistics.median(cpu_per_mib):.2f} ms"),
    ]
    print(format_table(("path", "throughput", "relay CPU per MiB"), rows, right={1, 2}))
    print(f"relayed/direct: {relayed / direct:.2f}")
    print(
        f"GET /proxies during the relayed downloads: median {ms(statistics.median(api_times))}, "
        f"worst {ms(max(api_times))} ({len(api_times)} requests)"
    )


def idle(args: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = min(args.connections, (min(limit, hard) - 64) // 2)  # the relay's two descriptors each
    if count < args.connections:
        print(
            f"\n{count} connections, not {args.connections}: the open-files limit is {hard}, two a connection"
        )
    holder, holder_port = upstream("hold", "0")
    faults = Faults()
    clients: list[socket.socket] = []
    try:
        relay_port = faults.relay("idle", holder_port)
        baseline = rss_kib(faults.pid)
        started = time.perf_counter()
        for _ in range(count):
            clients.append(socket.create_connection(("127.0.0.1", relay_port)))
        deadline = time.monotonic() + 120
        while len(list(Path(f"/proc/{holder.pid}/fd").iterdir())) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        opened = time.perf_counter() - started
        loaded = rss_kib(faults.pid)
        before = cpu_seconds([faults.pid])
        time.sleep(args.idle)
        idle_cpu = (cpu_seconds([faults.pid]) - before) / args.idle
        api_times = [faults.timed("GET", "/proxies") for _ in range(args.requests)]
        toxic = {"type": "latency", "attributes": {"latency": 100}}
        add = faults.timed("POST", "/proxies/idle/toxics", toxic)
        remove = faults.timed("DELETE", "/proxies/idle/toxics/latency_downstream")
    finally:
        for client in clients:
            client.close()
        faults.stop()
        holder.stop()
    print(f"\n{count} idle relayed connections (opened in {opened:.1f} s)")
    rows = [
        ("relay RSS", f"{baseline / 1024:.1f} MiB before, {loaded / 1024:.1f} MiB with them"),
        ("per connection", f"{(loaded - baseline) / count:.1f} KiB"),
        ("relay CPU while idle", f"{idle_cpu * 100:.1f}% of a core over {args.idle:g} s"),
        (
            "GET /proxies",
            f"median {ms(statistics.median(api_times))}, worst {ms(max(api_times))} ({args.requests})",
        ),
        ("add a latency toxic to all", ms(add)),
        ("remove it from all", ms(remove)),
    ]
    print(format_table(("what", "measured"), rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--megabytes", type=int, default=200, help="MiB per download (default: 200)")
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--idle", type=float, default=5.0, help="seconds the connections sit idle")
    p.add_argument("--requests", type=int, default=200, help="GET /proxies timed under load")
    p.add_argument("--part", choices=("throughput", "idle", "all"), default="all")
    args = p.parse_args()
    if args.part in ("throughput", "all"):
        throughput(args)
    if args.part in ("idle", "all"):
        idle(args)


if __name__ == "__main__":
    main()
