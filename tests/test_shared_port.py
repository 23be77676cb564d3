"""Two ``twistd -n`` copies of a server on one port (``--reuse-port``): both serve; one
stops, the other goes on.

Each copy is a real twistd whose log a thread gathers as it comes, so a test waits
for a line itself, with a deadline. The kernel spreads new connections among the
copies by a hash of each client's address and port: the test connects afresh, from
a new source port each time, until each copy has logged a client.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading

from poetrynow.poems import load_poem
from tests.support import Editions, free_port, plain_twin, temp_dir
from tests.test_server_commands import fetch
from tests.test_twistd import SERVING, TWISTD
from tests.time_limit import SynchronousTestCase

#: Seconds a copy may take to log what a test waits for.
WITHIN = 30.0
#: Connections tried before giving up on the kernel sending one to each copy (two
#: copies: the chance that 200 all go to one is 2 ** -199).
ATTEMPTS = 200
#: Poems fetched from the copy left serving.
AFTER = 10
POEM = "kettle"

SLOW_CLIENT = re.compile(r"Somebody at 127\.0\.0\.1:\d+ wants poetry!")
FAST_CLIENT = re.compile(r"sending \d+ bytes of poetry to 127\.0\.0\.1:\d+")
PROXY_CLIENT = re.compile(r"Fetching poem from server\.|Using cached poem\.|Joining the poem download")


class TwistdCopy:
    """``twistd -n PLUGIN ...`` in a directory of its own; a thread gathers its log lines."""

    def __init__(self, case, *args: str):
        self.process = subprocess.Popen(
            TWISTD + ["-n", "--pidfile", "twistd.pid", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=temp_dir(case),
            stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        case.addCleanup(self.stop)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    ended = False

    def count(self, pattern: re.Pattern) -> int:
        with self.changed:
            return sum(1 for line in self.lines if pattern.search(line))

    def wait_for(self, pattern: re.Pattern, times: int = 1) -> re.Match | None:
        """The ``times``-th line that matches; None if twistd ended first. AssertionError past WITHIN."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.count(pattern) >= times or self.ended, WITHIN):
                raise AssertionError(f"no {pattern.pattern!r} within {WITHIN} s:\n" + "\n".join(self.lines))
            found = [m for line in self.lines if (m := pattern.search(line))]
        return found[times - 1] if len(found) >= times else None

    def stop(self) -> int:
        """SIGTERM, and the exit status once twistd is gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(WITHIN)
        return self.process.returncode


class SharedPortTests(Editions, SynchronousTestCase):
    """Two copies of each sharing plugin; the test class runs again in the plain edition."""

    def copy(self, plugin: str, port: int, *args: str) -> TwistdCopy:
        return TwistdCopy(self, plugin, *self.plugin_edition(), "--reuse-port", "--port", str(port), *args)

    def first_copy(self, plugin: str, *args: str) -> tuple[TwistdCopy, int]:
        """The first copy, on a free port. ``--reuse-port`` takes no port 0 (each copy would
        get a port of its own), so a port is picked, and picked again if taken meanwhile."""
        for _ in range(5):
            port = free_port()
            first = self.copy(plugin, port, *args)
            if first.wait_for(SERVING):
                return first, port
            first.stop()
            self.assertIn("Address already in use", first.process.stderr.read())  # type: ignore[union-attr]
        raise AssertionError("no free port stayed free")

    def share(self, plugin: str, client: re.Pattern, *args: str) -> None:
        poem = load_poem(POEM).data
        first, port = self.first_copy(plugin, *args)
        second = self.copy(plugin, port, *args)
        serving = second.wait_for(SERVING)
        self.assertIsNotNone(serving, second.process.stderr)
        self.assertEqual(int(serving.group(1)), port)  # type: ignore[union-attr]
        copies = (first, second)
        for _ in range(ATTEMPTS):
            self.assertEqual(fetch(port), poem)
            if all(copy.count(client) for copy in copies):
                break
        for copy in copies:  # each took a client (a line may come just after its poem)
            self.assertIsNotNone(copy.wait_for(client))

        self.assertEqual(first.stop(), -signal.SIGTERM)
        served = second.count(client)
        for _ in range(AFTER):
            self.assertEqual(fetch(port), poem)
        self.assertIsNotNone(second.wait_for(client, served + AFTER))
        self.assertEqual(second.stop(), -signal.SIGTERM)

    def test_two_slowpoetry_copies(self):
        self.share("slowpoetry", SLOW_CLIENT, "--poem", POEM, "--num-bytes", "700", "--delay", "0")

    def test_two_fastpoetry_copies(self):
        self.share("fastpoetry", FAST_CLIENT, "--poem", POEM)

    def test_two_poetryproxy_copies(self):
        upstream = self.server(POEM, "--concurrent", "--num-bytes", "700", "--delay", "0", "--quiet")
        self.addCleanup(upstream.stop)
        self.share("poetryproxy", PROXY_CLIENT, f"127.0.0.1:{upstream.port}")


PlainSharedPortTests = plain_twin(SharedPortTests)
