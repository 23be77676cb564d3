"""A 100 MB poem to 100 clients at once: does fastpoetry's memory stay near one poem?

Starts ``fastpoetry`` on a generated poem of SIZE megabytes, connects CLIENTS
clients at once (asyncio, in this process), checks that each got the poem whole
(by hash), and reports the server's peak resident memory (VmHWM) against the
poem's size. Target: under twice the poem.

    .venv/bin/python benchmarks/big_poem.py [--megabytes 100] [--clients 100]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


async def download(port: int) -> tuple[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    digest, size = hashlib.sha256(), 0
    while data := await reader.read(1 << 20):
        digest.update(data)
        size += len(data)
    writer.close()
    return digest.hexdigest(), size


async def fetch_all(port: int, clients: int) -> list[tuple[str, int]]:
    return await asyncio.gather(*(download(port) for _ in range(clients)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--megabytes", type=int, default=100)
    p.add_argument("--clients", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="poetrynow-big-") as workdir:
        line = b"a line of a very long poem, written again and again until it is large enough\n"
        poem = line * (args.megabytes * 1_000_000 // len(line))
        path = Path(workdir) / "epic.txt"
        path.write_bytes(poem)
        expected = hashlib.sha256(poem).hexdigest()
        size = len(poem)
        del poem
        server = subprocess.Popen(
            [str(BIN / "fastpoetry"), str(path), "--quiet"], stdout=subprocess.PIPE, text=True
        )
        try:
            port = int(server.stdout.readline().rsplit(" ", 1)[1].rstrip(".\n"))  # type: ignore[union-attr]
            started = time.monotonic()
            results = asyncio.run(fetch_all(port, args.clients))
            took = time.monotonic() - started
            rss = peak_rss(server.pid)
        finally:
            server.terminate()
            server.wait()
    whole = sum(1 for digest, got in results if digest == expected and got == size)
    print(
        f"A {size / 1e6:.0f} MB poem to {args.clients} clients at once: {whole}/{args.clients} whole in "
        f"{took:.1f} s; fastpoetry's peak RSS {rss / 1e6:.0f} MB = {rss / size:.2f} times the poem "
        f"(target: under 2)."
    )
    return 0 if whole == args.clients and rss < 2 * size else 1


if __name__ == "__main__":
    sys.exit(main())
