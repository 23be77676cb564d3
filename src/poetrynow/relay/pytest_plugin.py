"""pytest's ``toxic_relay`` fixture: a relay with faults in front of any upstream, reset between tests.

Registered as the ``poetrynow`` plugin (the ``pytest11`` entry point), so a
project that installs poetrynow has it. In a test::

    def test_a_slow_cache(toxic_relay):
        relay = toxic_relay("127.0.0.1:6379")
        relay.add("latency", latency=300)
        client = Client(*relay.address)

The relays run on one reactor in a daemon thread for the whole session: one per
upstream, so a relay keeps its port from test to test, each reset (enabled, no
toxics) after every test that used it, and all stopped at the session's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from poetrynow.relay.relay import Relays
from poetrynow.relay.testing import ReactorThread, RelayHandle, Upstream, upstream_text


class RelayPool:
    """The session's relays, one per upstream, on one reactor thread."""

    def __init__(self, seed: int | None = None):
        self.thread = ReactorThread()
        self.relays = Relays(self.thread.reactor, seed=seed)
        self.handles: dict[str, RelayHandle] = {}

    def get(self, upstream: Upstream) -> RelayHandle:
        target = upstream_text(upstream)
        if target not in self.handles:
            body = {"name": f"relay-{len(self.handles) + 1}", "listen": "127.0.0.1:0", "upstream": target}
            self.handles[target] = RelayHandle(self.thread.call(self.relays.create, body), self.thread.call)
        return self.handles[target]

    def stop(self) -> None:
        try:
            self.thread.call(self.relays.stop)
        finally:
            self.thread.stop()


@pytest.fixture(scope="session")
def toxic_relay_pool() -> Iterator[RelayPool]:
    pool = RelayPool()
    yield pool
    pool.stop()


@pytest.fixture
def toxic_relay(toxic_relay_pool: RelayPool) -> Iterator[Callable[[Upstream], RelayHandle]]:
    """``toxic_relay(upstream)``: the relay in front of ``upstream`` (``"host:port"`` or a tuple)."""
    used: list[RelayHandle] = []

    def get(upstream: Upstream) -> RelayHandle:
        handle = toxic_relay_pool.get(upstream)
        used.append(handle)
        return handle

    yield get
    for handle in used:
        handle.reset()
