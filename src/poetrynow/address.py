"""The addresses of servers that clients take: ``[host:]port``, or a client endpoint.

A bare port means 127.0.0.1, as in the articles, so ``get-poetry 10000 10001``
works as written there. IPv6 hosts go in brackets: ``[::1]:10000``. Twisted's
client endpoint descriptions are taken too: ``tcp:host:port`` is the same as
``host:port``, and ``unix:/path``, ``ssl:...`` and ``tls:...`` are kept as
descriptions (an Address with ``endpoint`` set), which the Twisted client hands to
``clientFromString``; engines without Twisted take TCP addresses only.

A host name may stand for several addresses (``localhost`` is ``::1`` first on
many systems, ``127.0.0.1`` first on others): :func:`resolve` lists them in the
resolver's order, every client tries them in turn until one connects (RFC 8305's
fallback), and :class:`ConnectFailed` names each one it tried.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"

#: The client endpoint kinds an address may start with.
ENDPOINT_KINDS = ("tcp", "unix", "ssl", "tls")


class AddressError(ValueError):
    """An address that is neither ``[host:]port`` with a port from 1 to 65535 nor a client endpoint."""


@dataclass(frozen=True, order=True)
class Address:
    host: str
    port: int
    #: A client endpoint description, for an address that is not plain TCP (``unix:/tmp/p.sock``).
    endpoint: str | None = None

    @property
    def tcp(self) -> bool:
        return self.endpoint is None

    def __str__(self) -> str:
        if self.endpoint is not None:
            return self.endpoint
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def split_description(description: str) -> tuple[str, list[str], dict[str, str]]:
    """An endpoint description as Twisted reads it: kind, positional and keyword fields.

    Fields are separated by ``:``; a ``\\:`` is a colon inside a field.
    """
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    kind, rest = fields[0].lower(), fields[1:]
    args = [field for field in rest if "=" not in field]
    kwargs = dict(field.split("=", 1) for field in rest if "=" in field)
    return kind, args, kwargs


def port_number(text: str, what: str) -> int:
    """A port a client connects to: ASCII digits, 1 to 65535."""
    if not (text.isascii() and text.isdigit()):
        raise AddressError(f"bad address {what!r}: the port must be a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise AddressError(f"bad address {what!r}: the port must be from 1 to 65535")
    return port


def parse_address(text: str, default_host: str = DEFAULT_HOST) -> Address:
    """Turn ``"10000"``, ``"localhost:10000"``, ``"[::1]:10000"`` or an endpoint into an Address."""
    text = text.strip()
    kind = text.split(":", 1)[0].lower()
    if ":" in text and kind in ENDPOINT_KINDS:
        return _endpoint(text, kind)
    host, port_text = default_host, text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise AddressError(f"bad address {text!r}: expected [host]:port")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise AddressError(f"bad address {text!r}: put an IPv6 host in brackets, [::1]:port")
    if not host:
        raise AddressError(f"bad address {text!r}: empty host")
    return Address(host, port_number(port_text, text))


def _endpoint(text: str, kind: str) -> Address:
    _, args, kwargs = split_description(text)
    if kind == "tcp":
        host = kwargs.get("host", args[0] if args else "")
        port_text = kwargs.get("port", args[1] if len(args) > 1 else "")
        if not host or not port_text:
            raise AddressError(f"bad address {text!r}: a client endpoint is tcp:host:port")
        return Address(host, port_number(port_text, text))
    if kind == "unix" and not (any(args) or kwargs.get("path")):
        raise AddressError(f"bad address {text!r}: a unix endpoint is unix:/path/to/socket")
    return Address("", 0, endpoint=text)


def ip_family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal; None for a name (which needs a lookup)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal."""
    return ip_family(host) is not None


def targets(address: Address, infos: Sequence[tuple]) -> list[Address]:
    """The IP addresses in ``getaddrinfo``'s answer for ``address``, in its order, each once."""
    found: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        target = Address(str(sockaddr[0]), address.port)
        if target not in found:
            found.append(target)
    return found


def resolve(address: Address) -> list[Address]:
    """Every address to try for a TCP ``address``: itself for an IP literal, else what
    the resolver gives, in its order (a ``socket.gaierror`` when it gives nothing)."""
    if is_ip(address.host):
        return [address]
    return targets(address, socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM))


class ConnectFailed(OSError):
    """No address a host name resolved to took the connection.

    It keeps what each address said, in the order tried, and words them as one
    line: ``Connection refused (tried ::1, then 127.0.0.1)``, or each address with
    its own reason when they differ. Its errno is the last attempt's.
    """

    def __init__(self, tried: Sequence[tuple[str, str]], errno: int | None = None):
        self.tried = list(tried)
        super().__init__(errno, self.summary)

    @property
    def summary(self) -> str:
        reasons = {reason for _, reason in self.tried}
        if not self.tried:
            return "no address to try"
        if len(reasons) == 1:
            hosts = ", then ".join(host for host, _ in self.tried)
            return f"{self.tried[0][1]} (tried {hosts})"
        return "; ".join(f"{host}: {reason}" for host, reason in self.tried)

    def __str__(self) -> str:
        return self.summary
