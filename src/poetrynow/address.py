"""The addresses of servers that clients take: ``[host:]port``, or a client endpoint.

A bare port means 127.0.0.1, as in the articles, so ``get-poetry 10000 10001``
works as written there. IPv6 hosts go in brackets: ``[::1]:10000``. Twisted's
client endpoint descriptions are taken too: ``tcp:host:port`` is the same as
``host:port``, and ``unix:/path``, ``ssl:...`` and ``tls:...`` are kept as
descriptions (an Address with ``endpoint`` set), which the Twisted client hands to
``clientFromString``; engines without Twisted take TCP addresses only.
"""

from __future__ import annotations

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
