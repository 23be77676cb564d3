"""A cold fast server takes 5,000 connects at once without a listen-queue overflow: a count.

The kernel counts every connect its listen queue had no room for (TcpExt
ListenOverflows); each such client waits a second or more for its SYN to be sent
again. The count is read in a network namespace of the test's own (``unshare``),
where nothing else adds to it, through benchmarks/burst.py, which runs the real
``slowpoetry --concurrent`` and ``get-poetry --engine select`` commands. The queue
is 512 deep, not the servers' 4,096: at 4,096 a server that stalls its accepts for
tens of milliseconds (as a thread beside it once made it: docs/benchmarks.md, "A
cold burst") still had room for 5,000, and the test would not see it; at 512 that
server overflowed by thousands, and a healthy one by none.

Heavy (tests/conftest.py): ``make test`` runs it, the version matrix does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import unittest
from pathlib import Path

from poetrynow import netcounters
from tests.time_limit import SynchronousTestCase

BURST = Path(__file__).resolve().parent.parent / "benchmarks" / "burst.py"
CLIENTS = 5000


@unittest.skipUnless(netcounters.read() is not None, "the kernel's counters are Linux's /proc/net/netstat")
class ColdBurstTests(SynchronousTestCase):
    def test_five_thousand_connects_at_once_overflow_nothing(self):
        if netcounters.private_network(["true"]) is None:
            self.skipTest("no network namespace of its own here: the machine's count is not the test's")
        args = ["--clients", str(CLIENTS), "--rounds", "1", "--waves", "1", "--servers", "fast"]
        # A regression overflows by thousands in every run; a neighbour's burst of CPU (the
        # machine is shared) can cost a healthy server a few, once. So: a second, fresh
        # server before the count is called a failure, and both runs are in its message.
        waves = []
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, str(BURST), *args, "--backlog", "512", "--json"],
                capture_output=True,
                text=True,
                timeout=180,
            )
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            waves.append(json.loads(result.stdout.splitlines()[0]))
            if waves[-1]["whole"] == CLIENTS and waves[-1]["counted"]["listen overflows"] == 0:
                return
        self.fail(f"a cold burst of {CLIENTS} overflowed (or lost poems) twice: {waves}")
