"""Helpers for tests that run the real commands as subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
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


def run(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command(name) + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def free_port() -> int:
    """A loopback port with nothing listening on it (so connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real server subprocess (``slowpoetry`` unless ``command_name`` says), on a free port."""

    def __init__(self, *args: str, command_name: str = "slowpoetry"):
        self.process = subprocess.Popen(command(command_name) + list(args), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.first_line = self.process.stdout.readline()
        if not self.first_line.endswith(".\n") or " on port " not in self.first_line:
            self.stop()
            raise RuntimeError(f"server did not start: {self.first_line!r} {self.stderr!r}")
        self.port = int(self.first_line.rsplit(" ", 1)[1].rstrip(".\n"))
        self.stdout = self.stderr = ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.stdout, self.stderr = self.process.communicate()
        return self.process.returncode


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


def write_poem(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


#: A poem whose non-ASCII characters are split by one-byte chunks.
UTF8_POEM = "Ça va, José?\nDéjà vu — naïve «café» über 🌙.\n".encode("utf-8")


def temp_dir(case) -> str:
    """A fresh directory removed after the test (trial's mktemp litters the cwd under pytest)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="poetrynow-test-")
    case.addCleanup(shutil.rmtree, path, True)
    return path
