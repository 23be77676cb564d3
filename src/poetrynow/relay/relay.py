"""The relays (toxiproxy's proxies): each listens, and relays every client to its upstream.

:class:`Relays` is the collection the HTTP API serves, with toxiproxy's rules
for creating, updating, populating and resetting; :class:`Relay` is one proxy,
its toxics in order, and its open connections, which a toxic change reaches at
once. Listening is synchronous (``listenTCP``), so an API answer names the port
that ``:0`` was given. Twisted closes a listening socket on the loop's next
turn, not at once, on every platform; so a start that follows a stop waits for
the stop's Deferred (the API answers when both are done), and an update that
keeps the listen address keeps the listening port.

A listen address is an IP literal or ``localhost`` (taken as 127.0.0.1): a name
would be resolved by a blocking ``bind`` on the reactor's thread.

With a seed, connection number n of a relay (counting from 1) meets the same
fate on every run: whether a toxic applies to it is drawn from a generator of
its own, ``random.Random(f"{seed}:{relay}:{n}:{toxic}:fate:{v}")`` for the
toxic's v-th update, so it depends on nothing else. A toxic's randomness
(jitter, slice sizes) comes from ``random.Random(f"{seed}:{relay}:{n}:{toxic}")``,
drawn once for each read (latency) or slice (slicer): it repeats as far as the
data comes in the same reads, which TCP does not promise.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from poetrynow.relay.connection import ClientSide, Connection, RelayFactory
from poetrynow.relay.toxics import TOXIC_EXISTS, TOXIC_NOT_FOUND, ApiError, Toxic, make_toxic, updated_toxic

log = Logger(namespace="poetrynow.relay")

PROXY_NOT_FOUND = "proxy not found"
PROXY_EXISTS = "proxy already exists"
MISSING = "missing required field"
#: Where a relay listens when its body names no address.
DEFAULT_LISTEN = "127.0.0.1:0"


def host_port(text: Any, what: str, port_zero: bool) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` split; ApiError(400) for anything else."""
    if not isinstance(text, str) or ":" not in text:
        raise ApiError(400, f"bad request body: {what} must be host:port, not {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    lowest = 0 if port_zero else 1
    if not (port_text.isascii() and port_text.isdigit()) or not lowest <= int(port_text) <= 65535:
        raise ApiError(400, f"bad request body: {what} has a bad port: {text!r}")
    return host, int(port_text)


def joined(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_address(text: Any) -> tuple[str, int]:
    """A listen address, its host an IP literal (or empty: every interface) or ``localhost``,
    taken as 127.0.0.1; another name is refused, since binding to it would block the reactor."""
    host, port = host_port(text, "listen", port_zero=True)
    if host == "localhost":
        return "127.0.0.1", port
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ApiError(
                400, f"bad request body: listen host must be an IP address or localhost, not {host!r}"
            ) from None
    return host, port


def all_done(pending: Iterable[defer.Deferred]) -> defer.Deferred:
    """One Deferred for all of ``pending``: None, or the first failure as it was (not a FirstError)."""
    together = defer.gatherResults(list(pending), consumeErrors=True)
    return together.addCallbacks(lambda _: None, lambda failure: failure.value.subFailure)


class Relay:
    """One proxy: ``name``, ``listen`` and ``upstream`` (``host:port``), ``enabled``, ``toxics``."""

    def __init__(self, name: str, listen: str, upstream: str, reactor: Any = None, seed: int | None = None):
        if reactor is None:
            from twisted.internet import reactor
        self.name, self.listen, self.upstream = name, listen, upstream
        self.reactor, self.seed = reactor, seed
        self.clock = reactor  # the toxics' and the lingering closes' timers (a Clock in a test)
        self.enabled = False
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self.count = 0  # connections accepted so far: the next one's number, less one
        self.port: Any = None
        self.stopping: defer.Deferred | None = None  # the port's stopListening, until it fires
        self.waiting: list[defer.Deferred] = []  # fired when the port has stopped
        self.stops = 0  # stops so far: a start that waited for a stop is void if another came

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.as_json() for toxic in self.toxics],
        }

    # -- listening

    def listen_now(self) -> None:
        """Listen, at once; ApiError 500 when the port cannot be had, as toxiproxy answers a failed
        listen (its clients take 409 for a duplicate name). Only while no stop is pending."""
        if self.port is not None:
            return
        host, port = listen_address(self.listen)
        try:
            self.port = self.reactor.listenTCP(port, RelayFactory(self), backlog=4096, interface=host)
        except CannotListenError as problem:
            error = problem.socketError
            code = getattr(error, "errno", None)
            words = os.strerror(code) if isinstance(code, int) and code > 0 else str(error)
            raise ApiError(500, f"listen tcp {self.listen}: {words}") from None
        self.listen = joined(host, self.port.getHost().port)
        self.enabled = True
        log.info(
            "Relay {name} on {listen}, to {upstream}",
            name=self.name,
            listen=self.listen,
            upstream=self.upstream,
        )

    def start(self) -> defer.Deferred:
        """Listen: at once, or once a stop still closing the port has closed it (void if the relay
        is stopped again meanwhile). Fails with listen_now's ApiError."""
        if self.stopping is None:
            return defer.maybeDeferred(self.listen_now)
        stops = self.stops
        return self.stopped().addCallback(lambda _: self.listen_now() if stops == self.stops else None)

    def stopped(self) -> defer.Deferred:
        """Fires once the listening port (if any) is closed."""
        if self.stopping is None:
            return defer.succeed(None)
        waiter: defer.Deferred = defer.Deferred()
        self.waiting.append(waiter)
        return waiter

    def _port_closed(self, result: Any) -> None:
        self.stopping = None
        waiting, self.waiting = self.waiting, []
        for waiter in waiting:
            waiter.callback(None)

    def stop(self) -> defer.Deferred:
        """Stop listening and drop every open connection; fires once the port is closed."""
        self.enabled = False
        self.stops += 1
        port, self.port = self.port, None
        self.drop_connections()
        if port is not None:
            self.stopping = stopping = defer.maybeDeferred(port.stopListening)
            stopping.addBoth(self._port_closed)
        return self.stopped()

    def drop_connections(self) -> None:
        for connection in list(self.connections):
            connection.drop()

    def enable(self) -> defer.Deferred:
        return self.start()

    def disable(self) -> defer.Deferred:
        """Refuse new clients (nothing listens) and drop the open ones, as toxiproxy does."""
        return self.stop()

    def upstream_address(self) -> tuple[str, int]:
        return host_port(self.upstream, "upstream", port_zero=False)

    # -- connections

    def chooser(self, number: int, key: str) -> random.Random:
        """Connection ``number``'s generator for ``key`` (a toxic, or its fate): see the module."""
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}:{self.name}:{number}:{key}")

    def accepted(self, client: ClientSide) -> Connection:
        self.count += 1
        connection = Connection(self, self.count, client)
        self.connections.add(connection)
        return connection

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)

    # -- toxics

    def toxic(self, name: str) -> Toxic:
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise ApiError(404, TOXIC_NOT_FOUND)

    def add_toxic(self, body: Any) -> Toxic:
        toxic = make_toxic(body)
        if any(old.name == toxic.name for old in self.toxics):
            raise ApiError(409, TOXIC_EXISTS)
        self.toxics.append(toxic)
        for connection in list(self.connections):
            connection.add(toxic)
        return toxic

    def update_toxic(self, name: str, body: Any) -> Toxic:
        old = self.toxic(name)
        toxic = updated_toxic(old, body)
        self.toxics[self.toxics.index(old)] = toxic
        for connection in list(self.connections):
            connection.update(toxic)
        return toxic

    def remove_toxic(self, name: str) -> None:
        toxic = self.toxic(name)
        self.toxics.remove(toxic)
        for connection in list(self.connections):
            connection.remove(toxic)

    def reset_toxics(self) -> None:
        for toxic in list(self.toxics):
            self.remove_toxic(toxic.name)


class PopulateError(ApiError):
    """A populate refused or stopped part-way: ``created``, the relays it made or kept first."""

    def __init__(self, status: int, message: str, created: list[Relay]):
        super().__init__(status, message)
        self.created = created


def _text(body: dict[str, Any], key: str, required: bool) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{MISSING}: {key}")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"bad request body: {key} must be a string")
    return value


def _enabled(body: dict[str, Any], default: bool) -> bool:
    value = body.get("enabled")
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, "bad request body: enabled must be true or false")
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad request body: a JSON object was expected")
    return body


class Relays:
    """Every relay, by name: what ``poetrynow faults`` serves over toxiproxy's API."""

    def __init__(self, reactor: Any = None, seed: int | None = None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor, self.seed = reactor, seed
        self.relays: dict[str, Relay] = {}

    def _relay(self, body: Any, where: str = "") -> tuple[Relay, bool]:
        """A relay (not started) as ``body`` describes it, and whether it is to be enabled."""
        body = _object(body)
        name = _text(body, "name", True)
        upstream = _text(body, "upstream", True)
        listen = _text(body, "listen", False) or DEFAULT_LISTEN
        assert name is not None and upstream is not None
        enabled = _enabled(body, True)
        listen = joined(*listen_address(listen))
        host_port(upstream, "upstream", port_zero=False)
        return Relay(name, listen, upstream, self.reactor, self.seed), enabled

    def create(self, body: Any) -> Relay:
        """A new relay, listening at once (a new name has no stop pending)."""
        relay, enabled = self._relay(body)
        if relay.name in self.relays:
            raise ApiError(409, PROXY_EXISTS)
        if enabled:
            relay.listen_now()
        self.relays[relay.name] = relay
        return relay

    def get(self, name: str) -> Relay:
        try:
            return self.relays[name]
        except KeyError:
            raise ApiError(404, PROXY_NOT_FOUND) from None

    def update(self, name: str, body: Any) -> defer.Deferred:
        """toxiproxy's update: a new listen or upstream restarts the relay (its connections
        dropped); ``enabled`` starts or stops it. A new upstream alone keeps the listening port
        (each connection reads the upstream as it dials), so nothing waits for a port to close.
        Fires with the relay."""
        relay = self.get(name)
        body = _object(body)
        listen = joined(*listen_address(_text(body, "listen", False) or relay.listen))
        upstream = _text(body, "upstream", False) or relay.upstream
        enabled = _enabled(body, relay.enabled)
        host_port(upstream, "upstream", port_zero=False)
        if listen != relay.listen:
            relay.stop()
            relay.listen = listen
        if upstream != relay.upstream:
            relay.drop_connections()
            relay.upstream = upstream
        done = relay.start() if enabled else relay.stop()
        return done.addCallback(lambda _: relay)

    def delete(self, name: str) -> defer.Deferred:
        relay = self.get(name)
        del self.relays[name]
        return relay.stop()

    def all(self) -> dict[str, Relay]:
        return dict(self.relays)

    @defer.inlineCallbacks
    def populate(self, bodies: Any) -> Any:
        """Create or replace each relay, in order, as toxiproxy does: one whose listen and upstream
        are unchanged is kept (its ``enabled`` applied), another of that name replaced (once the
        old one's port is closed). Every body is checked first, so a bad one changes nothing; a
        relay that then cannot listen stops the list there, and the :class:`PopulateError` names
        the relays already created, as toxiproxy's answer lists them. Fires with the relays."""
        if not isinstance(bodies, list):
            raise PopulateError(400, "bad request body: a JSON array of proxies was expected", [])
        wanted: list[tuple[Relay, bool]] = []
        try:
            for body in bodies:
                relay, enabled = self._relay(body)
                if any(relay.name == seen.name for seen, _ in wanted):
                    raise ApiError(400, f"bad request body: proxy {relay.name!r} is named twice")
                wanted.append((relay, enabled))
        except ApiError as problem:
            raise PopulateError(problem.status, problem.message, []) from None
        result: list[Relay] = []
        try:
            for relay, enabled in wanted:
                old = self.relays.get(relay.name)
                if old is not None and (old.listen, old.upstream) == (relay.listen, relay.upstream):
                    result.append((yield self.update(old.name, {"enabled": enabled})))
                    continue
                if old is not None:
                    del self.relays[old.name]
                    yield old.stop()
                if enabled:
                    relay.listen_now()
                self.relays[relay.name] = relay
                result.append(relay)
        except ApiError as problem:
            raise PopulateError(problem.status, problem.message, result) from None
        return result

    def reset(self) -> defer.Deferred:
        """Every relay enabled, every toxic removed (toxiproxy's ``POST /reset``); fires once every
        relay listens (a relay just disabled waits for its port to close)."""
        for relay in self.relays.values():
            relay.reset_toxics()
        return all_done(relay.start() for relay in self.relays.values())

    def stop(self) -> defer.Deferred:
        return defer.DeferredList([relay.stop() for relay in self.relays.values()])
