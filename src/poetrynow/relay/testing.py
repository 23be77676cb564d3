"""The relay for test suites, in-process and without the HTTP API.

A test that talks to a server through a relay wants to say what goes wrong, in
one line, and to get the relay's address. Three forms, one control surface
(:class:`RelayHandle`: ``add``, ``update``, ``remove``, ``disable``, ``enable``,
``reset``, ``address``):

- :func:`relay`, a context manager for plain synchronous tests: the relay runs
  on the process's relay reactor, in a daemon thread started at the first use
  and kept (a reactor per use would cost its poller and waker descriptors each
  time), or on a reactor the caller already runs in another thread; each call
  waits for the reactor to carry it out, for at most :data:`CALL_TIMEOUT`
  seconds;
- :class:`RelayFixture`, for trial tests, on the reactor that runs the test;
- the pytest fixture ``toxic_relay`` (:mod:`poetrynow.relay.pytest_plugin`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from poetrynow.relay.relay import Relay
from poetrynow.relay.relays import Relays
from poetrynow.relay.toxics import DOWNSTREAM, Toxic

Upstream = str | tuple[str, int]

#: Seconds a call from a test's thread waits for the relay's reactor.
CALL_TIMEOUT = 30.0


def upstream_text(upstream: Upstream) -> str:
    """``"host:port"`` from either form a test may have at hand."""
    if isinstance(upstream, tuple):
        host, port = upstream
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return upstream


class ReactorThread:
    """A reactor running in a daemon thread (a new one, or ``reactor`` already running in one);
    :meth:`call` runs a function on it and waits for its result, Deferred or not."""

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
        """``function(*args, **kwargs)`` on the reactor, its result here; TimeoutError after
        :data:`CALL_TIMEOUT` seconds, RuntimeError if the reactor's thread has ended."""
        done = threading.Event()
        outcome: list[Any] = []

        def settled(result: Any) -> None:
            outcome.append(result)
            done.set()

        def run() -> None:
            defer.maybeDeferred(function, *args, **kwargs).addBoth(settled)

        self.reactor.callFromThread(run)
        deadline = time.monotonic() + CALL_TIMEOUT
        while not done.wait(0.1):
            if self.thread is not None and not self.thread.is_alive():
                raise RuntimeError("the relay's reactor thread has ended")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the relay's reactor did not answer in {CALL_TIMEOUT:g} s")
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result


_shared: ReactorThread | None = None
_shared_lock = threading.Lock()


def shared_thread() -> ReactorThread:
    """The process's relay reactor thread, started at the first call and never stopped."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.thread is None or not _shared.thread.is_alive():
            _shared = ReactorThread()
        return _shared


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

    def disable(self) -> Any:
        """Refuse new clients, drop the open ones; done once the port is closed (a Deferred, in the
        trial form)."""
        return self.run(self.relay.disable)

    def enable(self) -> Any:
        """Listen again; done once listening (a Deferred, in the trial form)."""
        return self.run(self.relay.enable)

    def reset(self, seed: int | None = None) -> Any:
        """As new: the open connections dropped, every toxic gone, enabled, connections counted
        from 1 again and ``seed`` as the seed, so that connection n of a test does not depend on
        the tests before it."""

        def reset() -> defer.Deferred:
            self.relay.drop_connections()
            self.relay.reset_toxics()
            self.relay.count, self.relay.seed = 0, seed
            return self.relay.enable()

        return self.run(reset)


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

    ``reactor``: one already running in another thread; by default the process's
    relay reactor (:func:`shared_thread`). Never the reactor of the calling thread:
    each call waits for the reactor, which would be waiting for the call.
    """
    thread = shared_thread() if reactor is None else ReactorThread(reactor)
    relays = Relays(thread.reactor, seed=seed)
    body = {"name": name, "listen": listen, "upstream": upstream_text(upstream)}
    handle = RelayHandle(thread.call(relays.create, body), thread.call)
    try:
        yield handle
    finally:
        thread.call(relays.stop)


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
