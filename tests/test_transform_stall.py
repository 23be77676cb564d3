"""A transform server that accepts and never reads: ``--timeout`` holds while the poem is sent.

The real ``get-poetry``, once per engine, sends a poem larger than what the kernel's
socket buffers can hold to a plain socket that accepts the connection and holds it
unread. Every engine that takes ``--xform`` gives up after ``--timeout`` and keeps the
poem, as for a transform server that never answers (docs/reliability.md); the others
refuse ``--xform`` at once, with one usage line.
"""

from __future__ import annotations

import json
import socket
import subprocess

from poetrynow.clients import ENGINES, XFORM, engines_taking
from tests.support import ServersInAThread, ThreadedServer, command, temp_dir, write_poem
from tests.time_limit import SynchronousTestCase

#: How long a run may take before the test calls it a hang: the timeout, the poem's
#: two trips over loopback and the interpreter's start, many times over.
BOUND = 20.0
TIMEOUT = 1


class NeverReads(ThreadedServer):
    """Accepts each connection and holds it open, unread, until the test ends."""

    def handle(self, conn: socket.socket) -> None:
        self.held.append(conn)


def buffer_limit(name: str, default: int) -> int:
    """The most the kernel lets one TCP socket buffer (the last of tcp_wmem's or tcp_rmem's three)."""
    try:
        with open(f"/proc/sys/net/ipv4/{name}") as sizes:
            return int(sizes.read().split()[2])
    except (OSError, ValueError, IndexError):
        return default


class TransformServerThatNeverReadsTests(SynchronousTestCase):
    def test_every_engine_gives_up_within_the_timeout_and_keeps_the_poem(self):
        # Larger than the sender's buffer at its largest and the receiver's as it starts.
        size = 2 * (buffer_limit("tcp_wmem", 4 << 20) + (1 << 20))
        line = b"a line of poetry that the transform server will never read\n"
        poem = line * (size // len(line) + 1)
        servers = ServersInAThread(self)
        port = servers.fast(write_poem(temp_dir(self), "long.txt", poem))
        holder = NeverReads()
        self.addCleanup(holder.close)
        for engine, info in ENGINES.items():
            with self.subTest(engine=engine):
                result = subprocess.run(
                    [*command("get-poetry"), "--engine", engine, "--json", "--timeout", str(TIMEOUT)]
                    + ["--xform", str(holder.port), str(port)],
                    capture_output=True,
                    text=True,
                    timeout=BOUND,
                    stdin=subprocess.DEVNULL,
                )
                if XFORM not in info.takes:
                    self.assertEqual(result.returncode, 2, result.stderr)
                    self.assertIn(
                        f"--xform works with --engine {', '.join(engines_taking(XFORM))}", result.stderr
                    )
                    continue
                self.assertEqual(result.returncode, 0, result.stderr)
                records = [json.loads(text) for text in result.stdout.splitlines()]
                self.assertEqual(
                    [r["reason"] for r in records if r["event"] == "transformfailed"],
                    [f"no data for {TIMEOUT} s"],
                )
                [finished] = [r for r in records if r["event"] == "finished"]
                self.assertEqual(finished["poem"], poem.decode())  # the original, kept
