"""One relay (a toxiproxy proxy): it listens, and relays every client to its upstream.

:class:`Relay` is one proxy, its toxics in order, and its open connections, which a
toxic change reaches at once; the collection the HTTP API serves, with toxiproxy's
rules for creating, updating, populating and resetting, is
:class:`~poetrynow.relay.relays.Relays`. Listening is synchronous (``listenTCP``), so
an API answer names the port that ``:0`` was given. Twisted closes a listening socket on the loop's next
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

from poetrynow.relay.connection import Connection
from poetrynow.relay.httptoxics import HTTP_STAGES
from poetrynow.relay.sides import ClientSide, RelayFactory, UpstreamFactory
from poetrynow.relay.tls import TlsSettings, client_factory, server_factory
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

    def __init__(
        self,
        name: str,
        listen: str,
        upstream: str,
        reactor: Any = None,
        seed: int | None = None,
        tls: TlsSettings | None = None,
        authority: Any = None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self.name, self.listen, self.upstream = name, listen, upstream
        self.tls, self.authority = tls, authority  # (an Authority when tls is given)
        self.reactor, self.seed = reactor, seed
        self.clock = reactor  # the toxics' and the lingering closes' timers (a Clock in a test)
        self.enabled = False
        self.not_http: str | None = None  # why an HTTP toxic cannot act here, once a connection showed it
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self.count = 0  # connections accepted so far: the next one's number, less one
        self.port: Any = None
        self.stopping: defer.Deferred | None = None  # the port's stopListening, until it fires
        self.waiting: list[defer.Deferred] = []  # fired when the port has stopped
        self.stops = 0  # stops so far: a start that waited for a stop is void if another came

    def as_json(self) -> dict[str, Any]:
        shown = {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.as_json() for toxic in self.toxics],
        }
        if self.tls is not None:  # (a plain relay's JSON is toxiproxy's, field for field)
            shown["tls"] = self.tls.as_json()
        return shown

    # -- listening

    def listen_now(self) -> None:
        """Listen, at once; ApiError 500 when the port cannot be had, as toxiproxy answers a failed
        listen (its clients take 409 for a duplicate name). Only while no stop is pending."""
        if self.port is not None:
            return
        host, port = listen_address(self.listen)
        try:
            factory: Any = RelayFactory(self)
            if self.tls is not None and self.tls.listen:
                factory = server_factory(self.authority, factory)
            self.port = self.reactor.listenTCP(port, factory, backlog=4096, interface=host)
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

    def upstream_factory(self, connection: Connection, host: str) -> Any:
        """What dials the upstream (``host``) for ``connection``: over TLS if the relay's ``tls`` says so."""
        factory = UpstreamFactory(connection)
        if self.tls is None or not self.tls.upstream:
            return factory
        return client_factory(self.authority, host, self.tls.verify_upstream, factory)

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
        if toxic.type in HTTP_STAGES and self.not_http is not None:
            raise ApiError(400, f"bad request body: relay {self.name}'s stream is not HTTP ({self.not_http})")
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
        self.not_http = None  # (a reset forgets what one connection showed, a port probe say)
        for toxic in list(self.toxics):
            self.remove_toxic(toxic.name)
