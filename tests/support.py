"""Helpers for tests that run the real commands as subprocesses on 127.0.0.1.

Over 300 lines because it is the one place every test module takes its servers from
(subprocess, thread, reactor-in-a-thread), its ports and its editions; each helper is
short and stands alone.
"""

from __future__ import annotations

import errno
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

BIN = Path(sys.executable).parent
#: How long a test waits for an event (a line from a child, a byte on a real socket): long, so
#: that a loaded machine does not flake; a deadline here detects a hang, it does not time a run.
DEADLINE = 30.0
MODULES = {
    "slowpoetry": "poetrynow.cli.slowpoetry",
    "get-poetry": "poetrynow.cli.getpoetry",
    "poetrynow": "poetrynow.cli.poetrynow",
    "fastpoetry": "poetrynow.cli.fastpoetry",
    "transformedpoetry": "poetrynow.cli.transformedpoetry",
    "poetry-proxy": "poetrynow.cli.poetryproxy",
}


def command(name: str) -> list[str]:
    """The installed console script, or ``python -m`` when not installed as one."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", MODULES[name]]


def run(name: str, *args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(name) + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def free_port() -> int:
    """A loopback port with nothing listening on it (so connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: The Twisted server commands that have a plain edition beside the fast one (``--plain``).
EDITIONED = ("fastpoetry", "poetry-proxy", "slowpoetry")


def with_edition(command_name: str, args: tuple[str, ...], plain: bool) -> list[str]:
    """``args`` with ``--plain`` when the plain edition is asked for and the command has two."""
    twisted = command_name != "slowpoetry" or "--concurrent" in args
    if plain and command_name in EDITIONED and twisted and "--plain" not in args:
        return [*args, "--plain"]
    return list(args)


class Editions:
    """A test class mixin: its servers run in the fast edition; :func:`plain_twin` makes the
    class again with ``plain = True``, so that every server test runs against both editions."""

    plain = False

    def server(self, *args: str, command_name: str = "slowpoetry") -> Server:
        return Server(*with_edition(command_name, args, self.plain), command_name=command_name)

    def edition_args(self, command_name: str, *args: str) -> list[str]:
        return with_edition(command_name, args, self.plain)

    def plugin_edition(self) -> list[str]:
        """A twistd plugin's option for this class's edition."""
        return ["--plain"] if self.plain else []


def plain_twin(cls: type) -> type:
    """``cls`` again, with its servers in the plain edition (``Plain`` before its name).

    Assign it to that name in the module (``PlainFooTests = plain_twin(FooTests)``):
    trial's workers find a test by its class's name.
    """
    twin = type(f"Plain{cls.__name__}", (cls,), {"plain": True, "__module__": cls.__module__})
    twin.__qualname__ = twin.__name__
    return twin


class Lines:
    """One pipe of a child process, read line by line by a thread of its own.

    ``pipe.readline()`` blocks for as long as the child is silent, so a deadline
    checked between lines never fires while it waits; here the thread blocks, and
    the test waits on a queue for no longer than its deadline. What the test has not
    taken stays queued for :meth:`rest`, so nothing read ahead is lost, as it is
    when communicate() follows a readline() on the buffered file.
    """

    def __init__(self, pipe: IO[str]):
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._ended = False
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        try:
            with pipe:
                for line in pipe:
                    self._queue.put(line)
        except (OSError, ValueError) as problem:  # the pipe went away under us: its end, for the reader
            if isinstance(problem, UnicodeDecodeError):  # never: the pipe decodes with backslashreplace
                raise
        finally:
            self._queue.put(None)

    def next_line(self, timeout: float = DEADLINE) -> str:
        """The next line; "" once the pipe has ended; TimeoutError if none comes within ``timeout``."""
        if self._ended:
            return ""
        try:
            line = self._queue.get(timeout=max(timeout, 0))
        except queue.Empty:
            raise TimeoutError(f"no line within {timeout:.0f} s") from None
        if line is None:
            self._ended = True
            return ""
        return line

    def until(self, wanted: Callable[[str], bool], timeout: float = DEADLINE) -> list[str]:
        """The lines up to the first that satisfies ``wanted``, that one included.

        AssertionError, naming the lines seen, if the pipe ends or ``timeout`` passes first.
        """
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.next_line(deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(f"no such line within {timeout:.0f} s: {lines!r}") from None
            if not line:
                raise AssertionError(f"the output ended without such a line: {lines!r}")
            lines.append(line)
            if wanted(line):
                return lines

    def rest(self, timeout: float = 10) -> str:
        """Every line not taken yet, up to the pipe's end, or what came within ``timeout`` if
        something (a grandchild) still holds the pipe open."""
        parts: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while line := self.next_line(deadline - time.monotonic()):
                parts.append(line)
        except TimeoutError:
            pass
        return "".join(parts)


class Child:
    """A command run as a subprocess, its stdout and stderr each read by :class:`Lines`.

    ``out`` and ``err`` are the pipes while it runs; after :meth:`stop` or
    :meth:`finish`, ``stdout`` and ``stderr`` hold what the test did not take from them.
    """

    def __init__(self, argv: list[str], **popen: Any):
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",  # a stray byte is shown, and never ends the reading
            stdin=subprocess.DEVNULL,
            **popen,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out, self.err = Lines(self.process.stdout), Lines(self.process.stderr)
        self.stdout = self.stderr = ""

    def _collect(self) -> tuple[str, str]:
        # Added to, not replaced: a second stop (a test's, then its cleanup's) keeps the first's.
        self.stdout += self.out.rest()
        self.stderr += self.err.rest()
        return self.stdout, self.stderr

    def finish(self, limit: float = DEADLINE) -> tuple[str, str]:
        """Wait for the child to end on its own, then the rest of its output.

        One still running after ``limit`` is killed, and the test fails saying so,
        with what it had written.
        """
        try:
            self.process.wait(limit)
        except subprocess.TimeoutExpired:
            self.stacks()
            self.process.kill()
            self.process.wait()
            out, err = self._collect()
            raise AssertionError(
                f"still running after {limit:.0f} s: {out[-2000:]!r} {err[-4000:]!r}"
            ) from None
        return self._collect()

    def stop(self, sig: int = signal.SIGTERM, limit: float = DEADLINE) -> int:
        """Send ``sig`` (if it still runs), wait for the end (killing it after ``limit``); its status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(limit)
        except subprocess.TimeoutExpired:
            self.stacks()
            self.process.kill()
            self.process.wait()
        self._collect()
        return self.process.returncode

    def stacks(self) -> None:
        """Have a child that outlived its deadline print its threads' stacks on stderr (SIGUSR1,
        stopping.stacks_on_sigusr1), so that the failure says where it hung."""
        try:
            self.process.send_signal(signal.SIGUSR1)
            self.process.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass


class Server(Child):
    """A real server subprocess (``slowpoetry`` unless ``command_name`` says), on a free port."""

    def __init__(self, *args: str, command_name: str = "slowpoetry"):
        super().__init__(command(command_name) + list(args))
        try:
            self.first_line = self.out.next_line(DEADLINE)
        except TimeoutError:
            self.first_line = f"(nothing within {DEADLINE:.0f} s)"
        if not self.first_line.endswith(".\n") or " on " not in self.first_line:
            self.stop()
            raise RuntimeError(f"server did not start: {self.first_line!r} {self.stderr!r}")
        # ``Serving kettle on port 10000.``; a Unix socket's line names its path and has no port.
        tail = self.first_line.rsplit(" ", 1)[1].rstrip(".\n")
        self.port = int(tail) if tail.isdigit() else 0


@contextmanager
def servers(*specs: tuple[str, ...]):
    """Start one ``slowpoetry`` per argument tuple; stop them all afterwards."""
    started: list[Server] = []
    try:
        for spec in specs:
            started.append(Server(*spec))
        yield started
    finally:
        for server in started:
            server.stop()


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything ``sock`` receives, and how the stream ended: "closed" for a clean EOF
    (a FIN), "timed out" when nothing came within the socket's timeout, else the error's words
    (``Connection reset by peer``)."""
    parts: list[bytes] = []
    try:
        while chunk := sock.recv(65536):
            parts.append(chunk)
    except TimeoutError:
        return b"".join(parts), "timed out"
    except OSError as problem:
        return b"".join(parts), os.strerror(problem.errno) if problem.errno else str(problem)
    return b"".join(parts), "closed"


def connect(
    port: int, send: bytes = b"", half_close: bool = False, timeout: float = DEADLINE
) -> socket.socket:
    """A client socket connected to 127.0.0.1:``port`` with a timeout, which has sent ``send``
    and, with ``half_close``, shut down its sending side (a FIN: it has nothing more to say)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if send:
            sock.sendall(send)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        raise
    return sock


def exchange(
    port: int, send: bytes = b"", half_close: bool = False, timeout: float = DEADLINE
) -> tuple[bytes, str]:
    """One client's whole conversation (:func:`connect`, then :func:`read_to_end`)."""
    with connect(port, send, half_close, timeout) as sock:
        return read_to_end(sock)


def write_poem(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


#: A poem whose non-ASCII characters are split by one-byte chunks.
UTF8_POEM = "Ça va, José?\nDéjà vu — naïve «café» über 🌙.\n".encode()


def temp_dir(case) -> str:
    """A fresh directory removed after the test (trial's mktemp litters the cwd under pytest)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="poetrynow-test-")
    case.addCleanup(shutil.rmtree, path, True)
    return path


class ThreadedServer:
    """A plain-socket server in a thread on 127.0.0.1, port 0; ``handle(conn)`` serves each client."""

    def __init__(self):

        self.accepted = 0
        self.held: list[socket.socket] = []  # connections kept open until close()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept()
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


class ResettingServer(ThreadedServer):
    """A poetry server in a thread whose first ``resets`` connections crash mid-poem.

    Each of those gets half the poem, then a TCP reset (SO_LINGER 0); later
    connections get the whole poem and a clean close. For crash and restart tests.
    """

    def __init__(self, poem: bytes, resets: int = 1):
        import struct

        self.poem, self.resets = poem, resets
        self._linger = struct.pack("ii", 1, 0)
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            if self.accepted <= self.resets:
                conn.sendall(self.poem[: len(self.poem) // 2])
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, self._linger)
            else:
                conn.sendall(self.poem)


class StallingServer(ThreadedServer):
    """A server in a thread that sends ``first`` bytes to each client, then nothing, holding on."""

    def __init__(self, first: bytes):
        self.first = first
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        conn.sendall(self.first)
        self.held.append(conn)


class ServersInAThread:
    """Real poetry servers (the project's own service trees) on a private reactor in a thread.

    The engines under test run their own loops in the test's thread; these servers
    answer them on 127.0.0.1 from a reactor of their own, so a test needs no server
    subprocess and no shared class fixture, under pytest and trial alike.
    """

    def __init__(self, case, plain: bool = False):

        from poetrynow.clients.twisted_engine import new_reactor

        self.plain = plain  # the servers' edition (the transform server has one)
        self.reactor = new_reactor()
        self.trees: list = []
        self.ports: list = []
        self.thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
        )
        self.thread.start()
        case.addCleanup(self.stop)

    def _start(self, tree) -> int:
        from poetrynow.servers.deploy import ServerTree

        assert isinstance(tree, ServerTree)
        tree.startService()
        self.trees.append(tree)
        return tree.listener.port

    def start(self, build, *args, **kwargs) -> int:
        """Build a tree with ``build(*args, reactor=..., iface="127.0.0.1")``, start it; its port."""
        from twisted.internet.threads import blockingCallFromThread

        from poetrynow.servers.common.listen import Where

        kwargs.setdefault("plain", self.plain)
        tree = build(*args, where=Where(0, "127.0.0.1"), reactor=self.reactor, **kwargs)
        return blockingCallFromThread(self.reactor, self._start, tree)

    def listen(self, factory) -> int:
        """Any factory of the test's own, on 127.0.0.1; its port."""
        from twisted.internet.threads import blockingCallFromThread

        port = blockingCallFromThread(self.reactor, self.reactor.listenTCP, 0, factory, interface="127.0.0.1")
        self.ports.append(port)
        return port.getHost().port

    def slow(self, poem: str, num_bytes: int, delay: float) -> int:
        from poetrynow.servers.deploy import slow_poetry

        return self.start(slow_poetry, poem, num_bytes, delay, log_clients=False)

    def fast(self, poem: str) -> int:
        from poetrynow.servers.deploy import fast_poetry

        return self.start(fast_poetry, poem, log_clients=False)

    def transforms(self) -> int:
        from poetrynow.servers.deploy import transformed_poetry

        return self.start(transformed_poetry)

    def call_stop(self, tree) -> None:
        """Stop one tree (it stops listening) before the test goes on."""
        from twisted.internet.defer import maybeDeferred
        from twisted.internet.threads import blockingCallFromThread

        self.trees.remove(tree)
        blockingCallFromThread(self.reactor, maybeDeferred, tree.stopService)

    def stop(self) -> None:
        from twisted.internet.defer import DeferredList
        from twisted.internet.threads import blockingCallFromThread

        def stop_all():
            stopping = [d for tree in self.trees if (d := tree.stopService()) is not None]
            return DeferredList(stopping + [port.stopListening() for port in self.ports])

        if self.thread.is_alive():
            blockingCallFromThread(self.reactor, stop_all)
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(10)


def localhost_addrinfo(*hosts: str):
    """A stand-in for ``socket.getaddrinfo`` whose resolver lists ``hosts`` for localhost, in order.

    Other names go to the real resolver. For tests that vary the resolver's order
    in-process (``mock.patch("socket.getaddrinfo", localhost_addrinfo("::1", "127.0.0.1"))``).
    """
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        answer = []
        for address in hosts:
            if ":" in address:
                answer.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0)))
            else:
                answer.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)))
        return answer

    return getaddrinfo


def refusing_port(case, hosts: tuple[str, ...] = ("127.0.0.1", "::1"), listen_on: str | None = None) -> int:
    """A port held on each of ``hosts`` by a bound socket that does not listen, for the test's life.

    Connecting there is refused, and no other test (or pytest worker) can be given
    the port meanwhile, as it could a port merely found free. With ``listen_on``,
    the socket on that host listens instead. A host this machine lacks is left out.
    """
    for _ in range(50):
        held: list[socket.socket] = []
        port = 0
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                held.append(sock)
                try:
                    sock.bind((host, port))
                except OSError as problem:
                    if problem.errno == errno.EADDRINUSE:
                        raise
                    held.pop().close()  # no such address here
                    continue
                port = sock.getsockname()[1]
                if host == listen_on:
                    sock.listen()
        except OSError:
            for sock in held:
                sock.close()
            continue
        for sock in held:
            case.addCleanup(sock.close)
        return port
    raise RuntimeError("no port free on every loopback address")
