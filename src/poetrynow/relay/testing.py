"""The relay for test suites, in-process and without the HTTP API.

A test that talks to a server through a relay wants to say what goes wrong, in
one line, and to get the relay's address. Three forms, one control surface
(:class:`RelayHandle`: ``add``, ``update``, ``remove``, ``disable``, ``enable``,
``reset``, ``address``):

- :func:`relay`, a context manager for plain synchronous tests: the relay runs
  on a private reactor in a daemon thread (or on a reactor the caller already
  runs in another thread), and each call waits for the reactor to carry it out;
- :class:`RelayFixture`, for trial tests, on the reactor that runs the test;
- the pytest fixture ``toxic_relay`` (:mod:`poetrynow.relay.pytest_plugin`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import blockingCallFromThread

from poetrynow.relay.relay import Relay, Relays
from poetrynow.relay.toxics import DOWNSTREAM, Toxic

Upstream = str | tuple[str, int]


def upstream_text(upstream: Upstream) -> str:
    """``"host:port"`` from either form a test may have at hand."""
    if isinstance(upstream, tuple):
        host, port = upstream
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return upstream


class ReactorThread:
    """A private reactor running in a daemon thread; :meth:`call` runs a function on it and waits."""

    def __init__(self, reactor: Any = None):
        self.owned = reactor is None
        if reactor is None:
            from poetrynow.clients.twisted_engine import new_reactor

            reactor = new_reactor()
        self.reactor = reactor
        self.thread: threading.Thread | None = None
        if self.owned:
            self.thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True, name="relay"
            )
            self.thread.start()

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return blockingCallFromThread(self.reactor, function, *args, **kwargs)

    def stop(self) -> None:
        if self.owned and self.thread is not None and self.thread.is_alive():
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(10)


class RelayHandle:
    """Control over one relay; ``run(function, *args)`` carries each call out on the relay's reactor."""

    def __init__(self, relay: Relay, run: Callable[..., Any]):
        self.relay, self.run = relay, run

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect: ``(host, port)``."""
        host, _, port = self.relay.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def listen(self) -> str:
        return self.relay.listen

    @property
    def toxics(self) -> list[Toxic]:
        return list(self.relay.toxics)

    def add(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: str = DOWNSTREAM,
        toxicity: float = 1.0,
        **attributes: int,
    ) -> str:
        """Add a toxic (toxiproxy's attributes as keywords); its name (``<type>_<stream>`` by default)."""
        body = {"type": type, "name": name, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        return self.run(self.relay.add_toxic, body).name

    def update(self, name: str, *, toxicity: float | None = None, **attributes: int) -> Toxic:
        return self.run(self.relay.update_toxic, name, {"toxicity": toxicity, "attributes": attributes})

    def remove(self, name: str) -> None:
        self.run(self.relay.remove_toxic, name)

    def disable(self) -> None:
        """Refuse new clients, drop the open ones."""
        self.run(self.relay.disable)

    def enable(self) -> None:
        self.run(self.relay.enable)

    def reset(self) -> None:
        """Enabled again, every toxic gone."""

        def reset() -> None:
            self.relay.enable()
            self.relay.reset_toxics()

        self.run(reset)


@contextmanager
def relay(
    upstream: Upstream,
    *,
    seed: int | None = None,
    reactor: Any = None,
    listen: str = "127.0.0.1:0",
    name: str = "relay",
) -> Iterator[RelayHandle]:
    """A relay in front of ``upstream`` for the ``with`` block, controlled from the test's thread.

    ``reactor``: one already running in another thread; by default a private one,
    started and stopped here. Never the reactor of the calling thread: each call
    waits for the reactor, which would be waiting for the call.
    """
    thread = ReactorThread(reactor)
    try:
        relays = Relays(thread.reactor, seed=seed)
        body = {"name": name, "listen": listen, "upstream": upstream_text(upstream)}
        handle = RelayHandle(thread.call(relays.create, body), thread.call)
        try:
            yield handle
        finally:
            thread.call(relays.stop)
    finally:
        thread.stop()


class RelayFixture(RelayHandle):
    """The trial form: a relay on the reactor that runs the test, stopped by the test's cleanup.

    ``yield RelayFixture(self, upstream).start()`` in an inlineCallbacks test; the
    controls then act at once (the test already runs on the reactor's thread).
    """

    def __init__(self, case: Any, upstream: Upstream, *, seed: int | None = None, reactor: Any = None):
        self.case = case
        self.relays = Relays(reactor, seed=seed)
        self.upstream = upstream_text(upstream)
        self.started: Relay | None = None

    def start(self, listen: str = "127.0.0.1:0", name: str = "relay") -> defer.Deferred[RelayFixture]:
        relay = self.relays.create({"name": name, "listen": listen, "upstream": self.upstream})
        super().__init__(relay, lambda function, *args: function(*args))
        self.case.addCleanup(self.relays.stop)
        return defer.succeed(self)
