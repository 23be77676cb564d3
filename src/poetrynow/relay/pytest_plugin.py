"""pytest's ``toxic_relay`` fixture: a relay with faults in front of any upstream, reset between tests.

Registered as the ``poetrynow`` plugin (the ``pytest11`` entry point), so a
project that installs poetrynow has it. In a test::

    def test_a_slow_cache(toxic_relay):
        relay = toxic_relay("127.0.0.1:6379", seed=7)
        relay.add("latency", latency=300)
        client = Client(*relay.address)

The relays run on the process's relay reactor (a daemon thread) for the whole
session: one per upstream, so a relay keeps its port from test to test. Each use
starts as new (its connections counted from 1, with the seed given, if any), and
after every test that used it the relay is reset: its open connections dropped,
its toxics removed, enabled. The relays are stopped at the session's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from poetrynow.relay.relays import Relays
from poetrynow.relay.testing import RelayHandle, Upstream, shared_thread, upstream_text


class RelayPool:
    """The session's relays, one per upstream, on one reactor thread."""

    def __init__(self, seed: int | None = None):
        self.thread = shared_thread()
        self.relays = Relays(self.thread.reactor, seed=seed)
        self.handles: dict[str, RelayHandle] = {}

    def get(self, upstream: Upstream) -> RelayHandle:
        target = upstream_text(upstream)
        if target not in self.handles:
            body = {"name": f"relay-{len(self.handles) + 1}", "listen": "127.0.0.1:0", "upstream": target}
            self.handles[target] = RelayHandle(self.thread.call(self.relays.create, body), self.thread.call)
        return self.handles[target]

    def stop(self) -> None:
        self.thread.call(self.relays.stop)


@pytest.fixture(scope="session")
def toxic_relay_pool() -> Iterator[RelayPool]:
    pool = RelayPool()
    yield pool
    pool.stop()


@pytest.fixture
def toxic_relay(toxic_relay_pool: RelayPool) -> Iterator[Callable[..., RelayHandle]]:
    """``toxic_relay(upstream, seed=None)``: the relay in front of ``upstream`` (``"host:port"`` or a
    tuple), as new: its connections counted from 1, its fates drawn from ``seed``."""
    used: list[RelayHandle] = []

    def get(upstream: Upstream, seed: int | None = None) -> RelayHandle:
        handle = toxic_relay_pool.get(upstream)
        if handle not in used:  # (a second call in the same test keeps what the first set up)
            used.append(handle)
            handle.reset(seed)
        return handle

    yield get
    for handle in used:
        handle.reset()
