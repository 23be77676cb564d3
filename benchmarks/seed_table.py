"""Part 2's experiment, measured: blocking vs select against three slow servers.

Uses the articles' own poems from ../shared/poetry when that folder is there
(ecstasy at 30 bytes a chunk, fascination and science at 10, as in Part 2), the
bundled poems otherwise. Each engine runs ``--runs`` times against the same
servers, side by side; the table gives medians, each engine's ideal (sum of the
schedules for blocking, the longest for select) and the ratios.

    .venv/bin/python benchmarks/seed_table.py [--runs 3] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

from poetrynow.clients import ENGINES as TABLE
from poetrynow.demo import DEMO_SERVERS, measure
from poetrynow.demo_servers import start_slow_server
from poetrynow.schedule import ideal_total
from poetrynow.tables import format_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "poetry"
ARTICLE_SERVERS = [("ecstasy.txt", 30), ("fascination.txt", 10), ("science.txt", 10)]
ENGINES = ["blocking", "select"]


def server_specs() -> tuple[str, list[tuple[str, int]]]:
    if all((SHARED / name).is_file() for name, _ in ARTICLE_SERVERS):
        return "the articles' poems (../shared/poetry)", [(str(SHARED / n), b) for n, b in ARTICLE_SERVERS]
    return "the bundled poems", list(DEMO_SERVERS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--delay", type=float, default=0.1)
    args = p.parse_args()
    source, specs = server_specs()
    servers = [start_slow_server(poem, num_bytes, args.delay) for poem, num_bytes in specs]
    try:
        addresses = [s.address for s in servers]
        schedules = [s.schedule for s in servers]
        times: dict[str, list[float]] = {engine: [] for engine in ENGINES}
        for run in range(args.runs):
            for engine in ENGINES:
                summary = measure(engine, addresses, io.StringIO())
                if summary.failed or len(summary.finished) != len(servers):
                    print(f"run {run + 1}: {engine} lost a poem", file=sys.stderr)
                    return 1
                times[engine].append(summary.elapsed)
                print(f"run {run + 1}: {engine} {summary.elapsed:.3f} s", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()

    sizes = ", ".join(f"{s.schedule.size} B at {s.schedule.num_bytes}" for s in servers)
    print(f"Servers: {source}: {sizes}, every {args.delay:g} s; {args.runs} runs, medians.\n")
    rows = []
    medians = {engine: statistics.median(values) for engine, values in times.items()}
    for engine in ENGINES:
        ideal = ideal_total(schedules, concurrent=TABLE[engine].concurrent)
        rows.append(
            (
                engine,
                f"{medians[engine]:.3f} s",
                f"{ideal:.3f} s",
                f"{medians[engine] / ideal:.4f}",
                f"{min(times[engine]):.3f}-{max(times[engine]):.3f} s",
            )
        )
    print(format_table(("engine", "median", "ideal", "median/ideal", "range"), rows, right={1, 2, 3, 4}))
    print(
        f"\nblocking/select: {medians['blocking'] / medians['select']:.3f} "
        f"(the article: 23.07 s / 10.13 s = 2.277)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
