"""The relays (toxiproxy's proxies): each listens, and relays every client to its upstream.

:class:`Relays` is the collection the HTTP API serves, with toxiproxy's rules
for creating, updating, populating and resetting; :class:`Relay` is one proxy,
its toxics in order, and its open connections, which a toxic change reaches at
once. Listening is synchronous (``listenTCP``), so an API answer names the port
that ``:0`` was given, and a stop closes the listening socket at once (see
:func:`stop_port`), so a relay disabled and enabled again gets its port back.

With a seed, connection number n of a relay (counting from 1) meets the same
fate on every run: each toxic draws its toxicity and its randomness (jitter,
slice sizes) from ``random.Random(f"{seed}:{relay}:{n}:{toxic}")``, whatever
the order in which connections and timers interleave.
"""

from __future__ import annotations

import errno
import os
import random
import socket
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


def stop_port(port: Any) -> defer.Deferred:
    """Stop listening, and free the port now: Twisted closes the socket on the next turn of the
    loop, and a relay enabled again before then would find its port taken. A shut-down listening
    socket is out of the kernel's listening table; its SO_REUSEADDR lets the port be bound again."""
    stopped = defer.maybeDeferred(port.stopListening)
    try:
        port.socket.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass
    return stopped


class Relay:
    """One proxy: ``name``, ``listen`` and ``upstream`` (``host:port``), ``enabled``, ``toxics``."""

    def __init__(self, name: str, listen: str, upstream: str, reactor: Any = None, seed: int | None = None):
        if reactor is None:
            from twisted.internet import reactor
        self.name, self.listen, self.upstream = name, listen, upstream
        self.reactor, self.seed = reactor, seed
        self.enabled = False
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self.count = 0  # connections accepted so far: the next one's number, less one
        self.port: Any = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.as_json() for toxic in self.toxics],
        }

    # -- listening

    def start(self) -> None:
        """Listen (at once); ApiError 409 when the port is taken, 400 for another refusal."""
        if self.port is not None:
            return
        host, port = host_port(self.listen, "listen", port_zero=True)
        try:
            self.port = self.reactor.listenTCP(port, RelayFactory(self), backlog=4096, interface=host)
        except CannotListenError as problem:
            error = problem.socketError
            code = getattr(error, "errno", None)
            words = os.strerror(code) if isinstance(code, int) and code > 0 else str(error)
            raise ApiError(409 if code == errno.EADDRINUSE else 400, f"{self.listen}: {words}") from None
        self.listen = joined(host, self.port.getHost().port)
        self.enabled = True
        log.info(
            "Relay {name} on {listen}, to {upstream}",
            name=self.name,
            listen=self.listen,
            upstream=self.upstream,
        )

    def stop(self) -> defer.Deferred:
        """Stop listening and drop every open connection."""
        self.enabled = False
        port, self.port = self.port, None
        for connection in list(self.connections):
            connection.drop()
        return stop_port(port) if port is not None else defer.succeed(None)

    def enable(self) -> None:
        self.start()

    def disable(self) -> None:
        """Refuse new clients (nothing listens) and drop the open ones, as toxiproxy does."""
        self.stop()

    def upstream_address(self) -> tuple[str, int]:
        return host_port(self.upstream, "upstream", port_zero=False)

    # -- connections

    def chooser(self, number: int, toxic: str) -> random.Random:
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}:{self.name}:{number}:{toxic}")

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
        host_port(listen, "listen", port_zero=True)
        host_port(upstream, "upstream", port_zero=False)
        return Relay(name, listen, upstream, self.reactor, self.seed), enabled

    def create(self, body: Any) -> Relay:
        relay, enabled = self._relay(body)
        if relay.name in self.relays:
            raise ApiError(409, PROXY_EXISTS)
        if enabled:
            relay.start()
        self.relays[relay.name] = relay
        return relay

    def get(self, name: str) -> Relay:
        try:
            return self.relays[name]
        except KeyError:
            raise ApiError(404, PROXY_NOT_FOUND) from None

    def update(self, name: str, body: Any) -> Relay:
        """toxiproxy's update: a new listen or upstream restarts the relay (its connections
        dropped); ``enabled`` starts or stops it."""
        relay = self.get(name)
        body = _object(body)
        listen = _text(body, "listen", False) or relay.listen
        upstream = _text(body, "upstream", False) or relay.upstream
        enabled = _enabled(body, relay.enabled)
        host_port(listen, "listen", port_zero=True)
        host_port(upstream, "upstream", port_zero=False)
        if (listen, upstream) != (relay.listen, relay.upstream):
            relay.stop()
            relay.listen, relay.upstream = listen, upstream
        if enabled:
            relay.start()
        else:
            relay.stop()
        return relay

    def delete(self, name: str) -> defer.Deferred:
        relay = self.get(name)
        del self.relays[name]
        return relay.stop()

    def all(self) -> dict[str, Relay]:
        return dict(self.relays)

    def populate(self, bodies: Any) -> list[Relay]:
        """Create or replace each relay: one whose listen and upstream are unchanged is kept (its
        ``enabled`` applied), another of that name replaced. Every body is checked first, so a bad
        one changes nothing."""
        if not isinstance(bodies, list):
            raise ApiError(400, "bad request body: a JSON array of proxies was expected")
        wanted: list[tuple[Relay, bool]] = []
        for body in bodies:
            relay, enabled = self._relay(body)
            if any(relay.name == seen.name for seen, _ in wanted):
                raise ApiError(400, f"bad request body: proxy {relay.name!r} is named twice")
            wanted.append((relay, enabled))
        result = []
        for relay, enabled in wanted:
            old = self.relays.get(relay.name)
            if old is not None and (old.listen, old.upstream) == (relay.listen, relay.upstream):
                result.append(self.update(old.name, {"enabled": enabled}))
                continue
            if old is not None:
                old.stop()
                del self.relays[old.name]
            result.append(self.create({**relay.as_json(), "enabled": enabled}))
        return result

    def reset(self) -> None:
        """Every relay enabled, every toxic removed (toxiproxy's ``POST /reset``)."""
        for relay in self.relays.values():
            relay.start()
            relay.reset_toxics()

    def stop(self) -> defer.Deferred:
        return defer.DeferredList([relay.stop() for relay in self.relays.values()])
