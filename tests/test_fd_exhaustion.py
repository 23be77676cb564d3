"""The concurrent slow server out of file descriptors: each client whole or failed, one line, recovery."""

from __future__ import annotations

import json
import resource
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from poetrynow.poems import load_poem
from tests.support import command, run

LIMIT = 256
CLIENTS = 600


def low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


class FdExhaustionTests(SynchronousTestCase):
    def test_no_empty_poem_passes_and_the_server_says_so_once(self):
        server = subprocess.Popen(
            [
                *command("slowpoetry"),
                "kettle",
                "--concurrent",
                "--quiet",
                "--num-bytes",
                "200",
                "--delay",
                "0.2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=low_fd_limit,
        )
        try:
            assert server.stdout is not None
            port = server.stdout.readline().rsplit(" ", 1)[1].rstrip(".\n")
            result = run("get-poetry", "--engine", "select", "--json", "--timeout", "10", *[port] * CLIENTS)
            records = [json.loads(line) for line in result.stdout.splitlines()]
            finished = [r for r in records if r["event"] == "finished"]
            failed = [r for r in records if r["event"] == "failed"]
            self.assertEqual(len(finished) + len(failed), CLIENTS)
            self.assertTrue(failed)  # the limit bit
            self.assertTrue(all(r["bytes"] == len(load_poem("kettle").data) for r in finished))
            self.assertEqual({r["reason"] for r in failed}, {"the server closed without sending a poem"})
            self.assertEqual(result.returncode, 1)
            after = run("get-poetry", "--engine", "select", port)  # it recovers
            self.assertEqual(after.returncode, 0, after.stderr)
        finally:
            server.terminate()
            out, _ = server.communicate(timeout=10)
        self.assertEqual(out.count("Out of file descriptors"), 1, out)
        self.assertIn(f"the open-files limit is {LIMIT}", out)
