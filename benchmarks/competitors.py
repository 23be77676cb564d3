"""The benchmarks' server and client processes: started with a deadline, ended with the benchmark.

A server left running after its benchmark holds a port and a share of the two cores
through the next run's figures, so every one of them ends with the benchmark, however
it ends: :meth:`Competitor.stop` in a ``finally`` on the way out (SIGTERM, then SIGKILL
after :data:`STOP_WITHIN`), and, for our own commands, :data:`~poetrynow.stopping.END_WITH`
in their environment, so that a benchmark killed outright takes them with it (the
commands ask Linux for a signal at their parent's death). A server's output goes to a
file, never to a pipe that nobody reads: a server that logs would block on a full pipe
and measure that instead.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from poetrynow.stopping import END_WITH, PR_SET_PDEATHSIG, prctl_call

#: Seconds a server has to print its listening line (a cold interpreter, twistd's plugins).
START_WITHIN = 30.0
#: Seconds a server has to end after SIGTERM before it is killed.
STOP_WITHIN = 10.0
#: The listening line of every command and prototype here, twistd's log line included.
LISTENING = re.compile(r"\b(?:Serving|Proxying)\b.*\bport (\d+)\.$")


def ended_with_us(env: dict | None = None) -> dict:
    """``env`` (or ours) naming this process as the one its commands must not outlive."""
    return dict(os.environ if env is None else env, **{END_WITH: str(os.getpid())})


class Competitor:
    """A server process: how to start it, how to find its port, how to end it.

    ``port``: a port the server is told to use (nginx), polled until it accepts;
    otherwise the port is read from the listening line. ``log``: where its output
    goes (a temporary file, removed at the stop, when not given).
    """

    def __init__(
        self, name: str, command: list[str], port: int | None = None, log: Path | None = None, env=None
    ):
        self.name, self.command, self.fixed_port, self.log, self.env = name, command, port, log, env
        self.process: subprocess.Popen | None = None
        self._own_log = False

    def start(self) -> Competitor:
        if self.log is None:
            handle, name = tempfile.mkstemp(prefix="poetrynow-bench-", suffix=".log")
            os.close(handle)
            self.log, self._own_log = Path(name), True
        try:
            with open(self.log, "w") as out:
                self.process = subprocess.Popen(
                    self.command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=ended_with_us(self.env),
                    preexec_fn=signalled_at_our_death(),
                )
        except BaseException:
            self.stop()
            raise
        LIVE.add(self)
        try:
            self.port = self._listening_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _listening_port(self) -> int:
        assert self.process is not None and self.log is not None
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.fixed_port is not None:
                if accepts(self.fixed_port):
                    return self.fixed_port
            else:
                for line in self.log.read_text(errors="replace").splitlines():
                    if found := LISTENING.search(line.strip()):
                        return int(found[1])
            time.sleep(0.05)
        said = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not start within {START_WITHIN:g} s: {said}")

    def pids(self) -> list[int]:
        assert self.process is not None
        return [self.process.pid] + children(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            ended(self.process, signal.SIGTERM)
        LIVE.discard(self)  # (after: a stop cut short by a signal leaves it for run_main)
        if self._own_log and self.log is not None:
            self.log.unlink(missing_ok=True)


#: The servers started and not yet stopped: :func:`run_main` stops them all on the way out,
#: whatever part of a benchmark raised before its own ``finally`` held them.
LIVE: set[Competitor] = set()


def signalled_at_our_death():
    """What the child runs before the server (a ``preexec_fn``), or None off Linux: SIGTERM when
    this benchmark dies, for servers that are not our commands (nginx, twistd) too; a benchmark
    already gone by then ends the child at once. prctl is looked up here, before the fork, so
    that the child only calls it."""
    prctl, us = prctl_call(), os.getpid()
    if prctl is None:
        return None

    def child() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != us:
            os._exit(1)

    return child


def ended(process: subprocess.Popen, signum: int = signal.SIGTERM, within: float = STOP_WITHIN) -> None:
    """Ask ``process`` to end with ``signum``; kill it if it has not within ``within`` s; reap it."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            process.send_signal(signum)
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except BaseException:  # a signal cut the wait short: killed, and the stop goes on
            process.kill()
            process.wait()
            raise


@contextmanager
def reaped(processes: list[subprocess.Popen]) -> Iterator[list[subprocess.Popen]]:
    """While inside, ``processes`` (filled in by the block) run; on the way out, whatever
    still runs is killed and reaped: a wave cut short by an error leaves no client behind."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    process.kill()
        for process in processes:
            process.wait()


def slowpoetry_servers(count: int, options: list[str], source: Path | None = None) -> list[Competitor]:
    """``count`` ``slowpoetry --concurrent`` processes serving kettle on one port (SO_REUSEPORT
    when more than one); ``source``: a checkout's src/ to run instead of the installed code."""
    command = [sys.executable, "-m", "poetrynow.cli.slowpoetry", "kettle", "--concurrent", *options]
    if count > 1:
        with socket.socket() as probe:  # a free port: --reuse-port needs one named
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command += ["--reuse-port", "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=str(source)) if source else None
    started: list[Competitor] = []
    try:
        for _ in range(count):
            started.append(Competitor("slowpoetry --concurrent", command, env=env).start())
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (a server's worker processes), from /proc."""
    found = []
    if not os.path.isdir("/proc"):
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def run_main(main) -> None:
    """Exit with ``main()``'s status; a benchmark stopped by a signal says so in one line."""
    from poetrynow.stopping import Interrupted, interrupt_on_signals

    interrupt_on_signals()  # SIGTERM and Ctrl-C run the finally blocks that stop the servers
    try:
        status = main()
    except Interrupted as stop:
        print(f"{Path(sys.argv[0]).name}: stopped by {stop.name}", file=sys.stderr)
        status = stop.status
    finally:
        for server in list(LIVE):
            server.stop()
    sys.exit(status)
