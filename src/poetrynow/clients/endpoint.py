"""Twisted client endpoints for an :class:`~poetrynow.address.Address`, and the words for failures.

An IP literal gets Twisted's TCP4 or TCP6 endpoint; a description
(``unix:/path``, ``ssl:...``) goes to ``clientFromString``. A host name gets a
:class:`FallbackEndpoint`, which tries each address the name resolves to, in the
resolver's order, until one connects: ``localhost`` is ``::1`` first on many
systems and ``127.0.0.1`` first on others, and a server may listen on only one
of them. Twisted's TCP4 endpoint would look up the IPv4 address alone.
"""

from __future__ import annotations

import errno
import os

from twisted.internet import defer, error, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

from poetrynow.address import Address, ConnectFailed, is_ip, resolve
from poetrynow.clients.errors import NETWORK_FAILURES
from poetrynow.events import describe_error


def client_endpoint(reactor, address: Address, timeout: float | None = None):
    """The Twisted client endpoint for an address: TCP (IPv4, IPv6 or a name), or its description."""
    if address.endpoint is not None:
        return clientFromString(reactor, address.endpoint)
    if not is_ip(address.host):
        return FallbackEndpoint(reactor, address, timeout)
    return ip_endpoint(reactor, address, timeout)


def ip_endpoint(reactor, address: Address, timeout: float | None = None):
    """TCP4 or TCP6, by the literal's kind; ``timeout`` bounds the connect (30 s without one)."""
    endpoint = TCP6ClientEndpoint if ":" in address.host else TCP4ClientEndpoint
    return endpoint(reactor, address.host, address.port, timeout=timeout or 30)


@implementer(IStreamClientEndpoint)
class FallbackEndpoint:
    """Connects to a host name: each address it resolves to in turn, until one takes it.

    The lookup is ``getaddrinfo`` in the reactor's thread pool (a blocking call
    kept off the loop, as Part 20 advises). Each address then gets an ordinary
    TCP endpoint, one after another: RFC 8305's fallback, without its racing.
    Cancelling the Deferred cancels the attempt under way, and no later one
    starts. When none connects, the failure is a
    :class:`~poetrynow.address.ConnectFailed` that names every address tried.
    """

    def __init__(self, reactor, address: Address, timeout: float | None = None):
        self.reactor, self.address, self.timeout = reactor, address, timeout

    def connect(self, factory) -> defer.Deferred:
        under_way: list[defer.Deferred] = []
        cancelled: list[bool] = []

        def cancel(_: defer.Deferred) -> None:
            cancelled.append(True)  # first: the attempt's own failure must not start another
            if under_way:
                under_way[-1].cancel()

        result: defer.Deferred = defer.Deferred(cancel)

        def attempt(step: defer.Deferred) -> defer.Deferred:
            under_way.append(step)
            return step

        def over() -> bool:
            return bool(cancelled) or result.called

        def tried_all(found: list[Address]) -> None:
            tried: list[tuple[str, str]] = []

            def next_one() -> None:
                if over():
                    return
                if len(tried) == len(found):
                    result.errback(ConnectFailed(tried))
                    return
                target = found[len(tried)]
                step = attempt(ip_endpoint(self.reactor, target, self.timeout).connect(factory))
                step.addCallbacks(connected, lambda failure: failed(target, failure))

            def connected(protocol) -> None:
                if over():
                    protocol.transport.abortConnection()  # too late: nobody wants it now
                else:
                    result.callback(protocol)

            def failed(target: Address, failure) -> None:
                if over():
                    return
                tried.append((target.host, describe_failure(failure)))
                next_one()

            next_one()

        def lookup_failed(failure) -> None:
            if not over():
                result.errback(failure)

        pool = self.reactor.getThreadPool()
        lookup = attempt(threads.deferToThreadPool(self.reactor, pool, resolve, self.address))
        lookup.addCallback(tried_all).addErrback(lookup_failed)
        return result


#: The network failures of the Twisted client: the clients' own, and Twisted's.
TWISTED_FAILURES = (
    *NETWORK_FAILURES,
    error.ConnectError,
    error.ConnectionLost,
    error.ConnectionDone,
    defer.CancelledError,
)


def describe_failure(failure) -> str:
    """A one-line reason for a Failure or exception, in the words of the select engine."""
    exc = getattr(failure, "value", failure)
    if isinstance(exc, error.ConnectionRefusedError):
        return "Connection refused"
    if isinstance(exc, error.ConnectionAborted):
        return "Connection aborted"
    if isinstance(exc, error.ConnectionLost):
        # Twisted drops the errno; a TCP connection lost uncleanly is a reset, and the
        # other engines, reading the errno, say so in these words.
        return os.strerror(errno.ECONNRESET)
    if isinstance(exc, error.DNSLookupError):
        return "Unknown host"
    if isinstance(exc, defer.CancelledError):
        return "Cancelled"
    if isinstance(exc, error.ConnectError) and exc.osError:
        # Twisted keeps the errno itself here (24, not "Too many open files"): word it as the OS does.
        if isinstance(exc.osError, int):
            return os.strerror(exc.osError)
        return str(exc.osError)
    if isinstance(exc, OSError):
        return describe_error(exc)
    return str(exc) or type(exc).__name__


__all__ = ["TWISTED_FAILURES", "FallbackEndpoint", "client_endpoint", "describe_failure"]
