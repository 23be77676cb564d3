"""The cyclic garbage collector, told that ten thousand connections are not garbage.

A run of ten thousand downloads, or a server with ten thousand clients, keeps
ten thousand sockets, protocols, transports and Deferreds alive for as long as
they last, and at Python's default thresholds (a young collection every 700
allocations, a full one every hundred of those) the collector walks all of them
again and again. Measured: half of the Twisted engine's time to start 10,000
connections, and the slow server fell so far behind accepting them that the
kernel's accept queue overflowed. Objects made before the work (the imports,
the service tree) are frozen out of the collector's sight, and young
collections come every 100,000 allocations. Cycles are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between two young collections (Python's default: 700).
YOUNG_COLLECTION_EVERY = 100_000


def collect_seldom() -> tuple[int, int, int]:
    """Freeze what exists now and collect seldom from here on; returns the old thresholds."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], YOUNG_COLLECTION_EVERY), old[1], old[2])
    return old


@contextmanager
def few_collections() -> Iterator[None]:
    """:func:`collect_seldom` for the length of a block (one engine's run), then as before."""
    old = collect_seldom()
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
