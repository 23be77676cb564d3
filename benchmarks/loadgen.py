"""A load generator for fast poetry servers: CONCURRENCY clients that each connect,
read to the end, and start over, for SECONDS. Prints one JSON line: poems fetched
whole, poems cut short, and the measured window. uvloop when installed.

    python benchmarks/loadgen.py PORT SECONDS CONCURRENCY EXPECTED_BYTES
"""

import asyncio
import functools
import json
import sys
import time


class Fetch(asyncio.Protocol):
    def __init__(self, done: asyncio.Future):
        self.done = done
        self.size = 0

    def data_received(self, data):
        self.size += len(data)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(self.size)


async def client(port: int, deadline: float, expected: int, counts: dict) -> None:
    loop = asyncio.get_running_loop()
    while time.monotonic() < deadline:
        done = loop.create_future()
        try:
            await loop.create_connection(functools.partial(Fetch, done), "127.0.0.1", port)
            size = await done
        except OSError:
            counts["errors"] += 1
            continue
        counts["whole" if size == expected else "short"] += 1


async def main(port: int, seconds: float, concurrency: int, expected: int) -> None:
    counts = {"whole": 0, "short": 0, "errors": 0}
    start = time.monotonic()
    await asyncio.gather(*(client(port, start + seconds, expected, counts) for _ in range(concurrency)))
    counts["seconds"] = time.monotonic() - start
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    port, seconds, concurrency, expected = sys.argv[1:5]
    asyncio.run(main(int(port), float(seconds), int(concurrency), int(expected)))
