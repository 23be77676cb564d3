"""The demos' servers: our own server commands, run as real subprocesses.

Apart from :mod:`poetrynow.demo` because both demos (Part 2's and Part 20's) and
the benchmarks start servers the same way: a command on a free port, its port read
from the first line it prints, within a bound, and the process ended with its
owner, by any signal.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

from poetrynow.address import Address
from poetrynow.poems import load_poem
from poetrynow.schedule import PoemSchedule
from poetrynow.stopping import END_WITH


@dataclass
class ServerProcess:
    """One of our server commands, run as a subprocess, and where it listens."""

    process: subprocess.Popen
    address: Address

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


@dataclass
class RunningServer(ServerProcess):
    """A ``slowpoetry`` subprocess and what it promised to do."""

    schedule: PoemSchedule


#: Seconds a server may take to say its port: a hang detector, far beyond a start on a loaded machine.
START_WITHIN = 30.0


class ServerDidNotStart(RuntimeError):
    """A demo server exited, or said nothing, before its listening line: the demo cannot run."""


def first_line(pipe: IO[str], timeout: float) -> str:
    """A child's first line; "" if it ends, or says no whole line within ``timeout`` seconds.

    ``pipe.readline()`` alone waits for ever on a child that is alive but silent. The
    bytes are read from the descriptor, past the file's buffer, which nothing has used yet.
    """
    fd = pipe.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    readable = select.poll()  # not select(): a descriptor past 1023 is fine
    readable.register(fd, select.POLLIN)
    while b"\n" not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not readable.poll(left * 1000):
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        got += chunk
    return got.split(b"\n", 1)[0].decode(errors="replace") + "\n"


def start_server(name: str, *args: str) -> ServerProcess:
    """Start one of our server commands (``slowpoetry``, ``transformedpoetry``...) with ``args``,
    and read its port from its listening line, the first it prints."""
    command = [sys.executable, "-m", f"poetrynow.cli.{name.replace('-', '')}", *args]
    # A demo killed outright (SIGKILL) takes its servers with it (stopping.end_with_parent).
    env = dict(os.environ, **{END_WITH: str(os.getpid())})
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stderr is not None
    try:
        first = first_line(process.stdout, START_WITHIN)
    except BaseException:  # Ctrl-C while it starts: it is in no list the demo stops yet
        process.kill()
        process.wait()
        raise
    try:
        port = int(first.rsplit(" ", 1)[1].rstrip(".\n"))
    except (IndexError, ValueError):
        ended = process.poll()
        process.kill()
        process.wait()
        said = process.stderr.read().strip().splitlines()
        silent = (
            f"it ended with status {ended}"
            if ended is not None
            else f"it said nothing within {START_WITHIN:g} s"
        )
        why = said[-1] if said else repr(first) if first else silent
        raise ServerDidNotStart(f"{name} did not start: {why}") from None
    return ServerProcess(process, Address("127.0.0.1", port))


def start_slow_server(poem: str, num_bytes: int, delay: float, concurrent: bool = False) -> RunningServer:
    """Start ``slowpoetry`` on a free port, and say how long its poem will take."""
    args = [poem, "--quiet", "--num-bytes", str(num_bytes), "--delay", str(delay)]
    started = start_server("slowpoetry", *args, *(["--concurrent"] if concurrent else []))
    size = len(load_poem(poem).data)
    return RunningServer(started.process, started.address, PoemSchedule(size, num_bytes, delay))
