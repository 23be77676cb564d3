"""The ``[host:]port`` addresses every command takes.

A bare port means 127.0.0.1, as in the articles, so ``get-poetry 10000 10001``
works as written there. IPv6 hosts go in brackets: ``[::1]:10000``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"


class AddressError(ValueError):
    """An address that is not ``[host:]port`` with a port from 0 to 65535."""


@dataclass(frozen=True, order=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str, default_host: str = DEFAULT_HOST) -> Address:
    """Turn ``"10000"``, ``"localhost:10000"`` or ``"[::1]:10000"`` into an Address."""
    text = text.strip()
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
    if not port_text.isdigit():
        raise AddressError(f"bad address {text!r}: the port must be a number")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise AddressError(f"bad address {text!r}: the port must be from 0 to 65535")
    return Address(host, port)
