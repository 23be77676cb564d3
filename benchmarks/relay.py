"""Relay benchmarks: ``poetrynow faults`` beside a direct connection, and at 10,000 connections.

Part 1, throughput and round trips, side by side in one run: a direct connection;
the relay with no toxic, whose bytes move in the kernel (splice); the relay with a
pass-through toxic (latency 0, both ways), whose bytes go through user space; and
the kernel's floor for one more hop, a blocking splice loop in a process of its
own (no reactor, no toxics: what the relay could reach at best on this machine);
and the relay terminating TLS for its client (``"tls": {"listen": true}``, the
client Python's ssl trusting ``GET /tls/ca``), whose bytes are decrypted in user space;
and the relay with a pass-through HTTP toxic (``http_latency`` 0, both ways) to an
upstream that answers one GET with the same bytes as an HTTP/1.1 body, so that the
relay frames both directions and matches the response to its request.
One upstream process sends ``--megabytes`` MiB to each client as fast as it can;
each round downloads it once along every path, in turn, so that all meet the same
machine. Reported: MiB/s and the relay's CPU milliseconds per MiB (utime + stime
from /proc), round 1 apart (the first download of a fresh relay process: cold),
then the medians of the later rounds. Then ``--round-trips`` 1-byte ping-pongs
along each path to an echo: median and 99th percentile, and what the relay adds
to the direct median. Last, one more relayed download while a thread times
``GET /proxies``: the API shares the reactor with the bytes, and toxiproxy's
users report hangs there.

Part 2, idle connections: ``--connections`` clients held open through one relay to
an upstream that holds them too. The relay's RSS before and after (per
connection), its CPU while they sit idle for ``--idle`` seconds, the API's
``GET /proxies`` response time (median and worst of ``--requests``), and the time
to add a toxic, and to remove it, on every open connection. Each relayed
connection costs the relay two descriptors, so its open-files limit caps the count:
the number used is printed when it is below the one asked for.

Over 300 lines because the paths, their load and the table live together, so that a
figure and its method cannot drift apart.

    .venv/bin/python benchmarks/relay.py [--rounds 4] [--megabytes 200] [--round-trips 10000]
        [--connections 10000] [--idle 5] [--requests 200] [--part throughput|idle|all]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import ssl
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
        if mode == "http":  # (one request, answered with the same bytes as a body)
            asked = b""
            while b"\r\n\r\n" not in asked and (more := conn.recv(65536)):
                asked += more
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (size << 20))
        for _ in range(size):
            conn.sendall(block)
def echo(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, _ = server.accept()
    if mode in ("send", "http", "echo"):
        threading.Thread(target=echo if mode == "echo" else send, args=(conn,), daemon=True).start()
    else:
        held.append(conn)
"""

#: The kernel's floor for one more hop: each client spliced to a new connection to the upstream
#: and back, by blocking splice(2) loops (a thread each way), with no reactor and no toxic.
FLOOR = r"""
import os, socket, sys, threading
upstream = int(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0), backlog=128)
print(server.getsockname()[1], flush=True)
def pump(source, sink):
    read_end, write_end = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(write_end, 1031, 1 << 20)
    except OSError:
        pass
    try:
        while moved := os.splice(source.fileno(), write_end, 1 << 20):
            while moved:
                moved -= os.splice(read_end, sink.fileno(), moved)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    client, _ = server.accept()
    far = socket.create_connection(("127.0.0.1", upstream))
    for source, sink in ((client, far), (far, client)):
        threading.Thread(target=pump, args=(source, sink), daemon=True).start()
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


def floor(upstream_port: int) -> tuple[Process, int]:
    child = Process([sys.executable, "-c", FLOOR, str(upstream_port)])
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

    def relay(self, name: str, port: int, passing: str = "") -> int:
        """A relay to ``port``; ``passing``: with a toxic of that type each way that passes
        everything at once (latency 0), so that its bytes go through user space."""
        created = self.call("POST", "/proxies", {"name": name, "upstream": f"127.0.0.1:{port}"})
        for stream in ("upstream", "downstream") if passing else ():
            toxic = {"type": passing, "stream": stream, "attributes": {"latency": 0}}
            self.call("POST", f"/proxies/{name}/toxics", {**toxic, "name": f"pass {stream}"})
        return int(created["listen"].rsplit(":", 1)[1])

    def tls_relay(self, name: str, port: int) -> int:
        """A relay to ``port`` that terminates TLS for its clients (no toxic: TLS keeps it in user space)."""
        body = {"name": name, "upstream": f"127.0.0.1:{port}", "tls": {"listen": True}}
        return int(self.call("POST", "/proxies", body)["listen"].rsplit(":", 1)[1])

    def client_context(self) -> ssl.SSLContext:
        """A client's TLS context that trusts the run's CA (``GET /tls/ca``)."""
        with urllib.request.urlopen(self.url + "/tls/ca", timeout=60) as answer:
            return ssl.create_default_context(cadata=answer.read().decode("ascii"))

    def timed(self, method: str, path: str, body=None) -> float:
        started = time.perf_counter()
        self.call(method, path, body)
        return time.perf_counter() - started


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def connect(port: int, context: ssl.SSLContext | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    return context.wrap_socket(sock, server_hostname="localhost") if context is not None else sock


#: The HTTP path's request, and the bytes of its response's head (counted apart from the body).
GET = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
HEAD_BYTES = len(b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n")


def download(port: int, context: ssl.SSLContext | None = None, request: bytes = b"") -> tuple[int, float]:
    """Every byte the server at ``port`` sends (over TLS with ``context``; after ``request``),
    counted, not kept; the seconds it took."""
    buffer = bytearray(MiB)
    total = 0
    started = time.perf_counter()
    with connect(port, context) as sock:
        if request:
            sock.sendall(request)
        try:
            while received := sock.recv_into(buffer):
                total += received
        except ssl.SSLEOFError:  # (the relay closes a TLS stream as its upstream closed: no close_notify)
            pass
    return total, time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


#: The paths, in the order each round takes them, and what a row calls them.
PATHS = {
    "direct": "direct",
    "floor": "kernel floor: a splice loop, no reactor",
    "kernel": "relay, no toxic (kernel path)",
    "user": "relay, pass-through toxic (user space)",
    "tls": "relay, TLS to its clients (user space)",
    "http": "relay, pass-through HTTP toxic (user space)",
}


def throughput(args: argparse.Namespace) -> None:
    source, source_port = upstream("send", str(args.megabytes))
    http_source, http_port = upstream("http", str(args.megabytes))
    echo, echo_port = upstream("echo", "0")
    floors = [floor(source_port), floor(echo_port)]
    faults = Faults()
    try:
        ports = {
            "direct": source_port,
            "floor": floors[0][1],
            "kernel": faults.relay("bulk", source_port),
            "user": faults.relay("bulk-user", source_port, passing="latency"),
            "tls": faults.tls_relay("bulk-tls", source_port),
            "http": faults.relay("bulk-http", http_port, passing="http_latency"),
        }
        tls = {"tls": faults.client_context()}
        cpu_of = {"floor": floors[0][0].pid, **dict.fromkeys(("kernel", "user", "tls", "http"), faults.pid)}
        rounds: list[dict[str, tuple[float, float | None]]] = []
        for number in range(args.rounds):
            measured: dict[str, tuple[float, float | None]] = {}
            for path, port in ports.items():
                before = cpu_seconds([cpu_of[path]]) if path in cpu_of else None
                size, seconds = download(port, tls.get(path), GET if path == "http" else b"")
                size -= HEAD_BYTES + len(str(args.megabytes * MiB)) if path == "http" else 0
                if size != args.megabytes * MiB:
                    raise RuntimeError(f"{PATHS[path]} delivered {size} bytes of {args.megabytes} MiB")
                cpu = None if before is None else (cpu_seconds([cpu_of[path]]) - before) * 1000 / (size / MiB)
                measured[path] = (size / MiB / seconds, cpu)
            rounds.append(measured)
            print(
                f"round {number + 1}: " + ", ".join(f"{p} {r:.0f} MiB/s" for p, (r, _) in measured.items()),
                file=sys.stderr,
                flush=True,
            )
        trip_ports = {
            "direct": echo_port,
            "floor": floors[1][1],
            "kernel": faults.relay("pingpong", echo_port),
            "user": faults.relay("pingpong-user", echo_port, passing="latency"),
            "tls": faults.tls_relay("pingpong-tls", echo_port),
        }
        trips = {
            path: round_trips(port, args.round_trips, tls.get(path)) for path, port in trip_ports.items()
        }
        api_times = polled_download(faults, ports["kernel"])
    finally:
        faults.stop()
        for process, _ in floors:
            process.stop()
        source.stop()
        http_source.stop()
        echo.stop()
    report(args, rounds, trips, api_times)


def polled_download(faults: Faults, port: int) -> list[float]:
    """One more download while a thread times GET /proxies, again and again: the API's answers."""
    api_times: list[float] = []
    stop = threading.Event()

    def poll_api() -> None:
        while not stop.is_set():
            api_times.append(faults.timed("GET", "/proxies"))

    poller = threading.Thread(target=poll_api)
    poller.start()
    try:
        download(port)
    finally:
        stop.set()
        poller.join()
    return api_times


def round_trips(port: int, count: int, context: ssl.SSLContext | None = None) -> list[float]:
    """``count`` 1-byte ping-pongs on one connection to an echo (over TLS with ``context``); each
    one's seconds, sorted."""
    times = []
    with connect(port, context) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(100):  # the connection's first trips (the relay dials its upstream): not timed
            sock.sendall(b"x")
            sock.recv(1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"x")
            if not sock.recv(1):
                raise RuntimeError("the echo closed during the round trips")
            times.append(time.perf_counter() - started)
    return sorted(times)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


def report(args, rounds: list[dict], trips: dict[str, list[float]], api_times: list[float]) -> None:
    cold, warm = rounds[0], rounds[1:] or rounds
    direct = statistics.median(r["direct"][0] for r in warm)
    print(
        f"\nThroughput: {args.megabytes} MiB a download; round 1 (cold: the relay process's first "
        f"download) apart, then medians of rounds 2-{len(rounds)}"
    )
    rows = []
    for path, label in PATHS.items():
        rate = statistics.median(r[path][0] for r in warm)
        cpus = [r[path][1] for r in warm if r[path][1] is not None]
        cold_rate, cold_cpu = cold[path]
        rows.append(
            (
                label,
                f"{cold_rate:.0f} MiB/s",
                "-" if cold_cpu is None else f"{cold_cpu:.2f} ms",
                f"{rate:.0f} MiB/s",
                f"{rate / direct:.2f}",
                f"{statistics.median(cpus):.2f} ms" if cpus else "-",
            )
        )
    headings = ("path", "cold", "cold CPU/MiB", "warm", "warm / direct", "relay CPU per MiB")
    print(format_table(headings, rows, right={1, 2, 3, 4, 5}))
    base = statistics.median(trips["direct"])
    print(f"\nRound trips: {args.round_trips} 1-byte ping-pongs on one connection to an echo, each path")
    rows = []
    for path, label in PATHS.items():
        if path not in trips:
            continue  # (the HTTP path's upstream is no echo)
        times = trips[path]
        median, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
        added = "-" if path == "direct" else us(median - base)
        rows.append((label, us(median), us(p99), added))
    print(format_table(("path", "median", "99th percentile", "added to direct"), rows, right={1, 2, 3}))
    print(
        f"\nGET /proxies during a relayed download: median {ms(statistics.median(api_times))}, "
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
    p.add_argument("--rounds", type=int, default=4, help="round 1 is the cold one (default: 4)")
    p.add_argument("--round-trips", type=int, default=10000)
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
