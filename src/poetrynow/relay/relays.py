"""Every relay, by name, with toxiproxy's rules: what ``poetrynow faults`` serves over its API.

A create or an update is checked whole before it changes anything; a populate
creates or replaces in order and, when one body is refused, keeps what it did
before it (toxiproxy's answer names them); a reset enables every relay and
removes every toxic. Each :class:`~poetrynow.relay.relay.Relay` does the relaying.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from poetrynow.relay.relay import (
    DEFAULT_LISTEN,
    MISSING,
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    Relay,
    all_done,
    host_port,
    joined,
    listen_address,
)
from poetrynow.relay.tls import TlsSettings
from poetrynow.relay.toxics import ApiError


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

    def __init__(self, reactor: Any = None, seed: int | None = None, authority: Any = None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor, self.seed = reactor, seed
        self.relays: dict[str, Relay] = {}
        self.made_authority = authority  # the TLS relays' CA (made at first need, unless given)

    def authority(self) -> Any:
        """The run's CA and the TLS relays' certificate (:mod:`poetrynow.relay.authority`), made
        in memory at the first TLS relay or ``GET /tls/ca``; a 501 where TLS cannot be done."""
        if self.made_authority is None:
            from poetrynow.relay.authority import Authority, missing

            why = missing()
            if why is not None:
                raise ApiError(501, why)
            self.made_authority = Authority()
        return self.made_authority

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
        tls = TlsSettings.from_json(body.get("tls"))
        authority = self.authority() if tls is not None else None
        return Relay(name, listen, upstream, self.reactor, self.seed, tls, authority), enabled

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
        tls = TlsSettings.from_json(body["tls"]) if "tls" in body else relay.tls
        authority = self.authority() if tls is not None else None
        if listen != relay.listen or tls != relay.tls:
            relay.stop()
            relay.listen, relay.tls, relay.authority = listen, tls, authority
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
                if old is not None and (old.listen, old.upstream, old.tls) == (
                    relay.listen,
                    relay.upstream,
                    relay.tls,
                ):
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
