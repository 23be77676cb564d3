"""The lazy engine against select on a poem of one long line: is reading lines linear?

Serves one poem of N megabytes with no newline from a fastpoetry tree in this
process, and times select and lazy side by side, rounds interleaved; reports the
medians and lazy/select. Before the fix (issue 13) lazy joined the pending line to
every read, which is quadratic: 7.6 s for 32 MB against select's 0.15 s.

    .venv/bin/python benchmarks/lazy_lines.py [--megabytes 8,32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import unittest
from pathlib import Path

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import Finished

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import ServersInAThread


class _Holder(unittest.TestCase):
    def runTest(self) -> None:  # only for ServersInAThread's cleanups
        pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--megabytes", default="8,32")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    holder = _Holder()
    servers = ServersInAThread(holder)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            print(f"{'MB':>4}  {'select':>8}  {'lazy':>8}  lazy/select")
            for megabytes in (int(n) for n in args.megabytes.split(",")):
                path = Path(workdir, f"{megabytes}.txt")
                path.write_bytes(b"x" * (megabytes << 20))
                port = servers.fast(str(path))
                times: dict[str, list[float]] = {"select": [], "lazy": []}
                for _ in range(args.rounds):
                    for engine in times:
                        events: list = []
                        start = time.monotonic()
                        run_engine(engine, [Address("127.0.0.1", port)], events.append, EngineOptions())
                        times[engine].append(time.monotonic() - start)
                        assert [len(e.poem) for e in events if isinstance(e, Finished)] == [megabytes << 20]
                select, lazy = (statistics.median(times[e]) for e in ("select", "lazy"))
                print(f"{megabytes:>4}  {select:>7.3f}s  {lazy:>7.3f}s  {lazy / select:>11.2f}")
    finally:
        holder.doCleanups()
    return 0


if __name__ == "__main__":
    sys.exit(main())
