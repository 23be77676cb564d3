"""TLS on a relay: what a proxy's ``tls`` field asks for, and the factories that do it.

``"tls": {"listen": true, "upstream": false, "verify_upstream": true}`` (each field
optional, those its defaults once ``tls`` is given): ``listen``, the relay terminates
TLS for its clients with the certificate of :mod:`poetrynow.relay.authority`;
``upstream``, it speaks TLS to its upstream, checking the upstream's certificate (its
name or address, against the machine's CAs and the run's own) unless
``verify_upstream`` is false. The toxics act on the plaintext between the two. A relay
without ``tls`` is toxiproxy's, and its JSON has no such field.

Both sides use Twisted's TLS protocol (``TLSMemoryBIOFactory`` over the relay's
own factories), so the relay's protocols, half-closes aside (TLS closes whole), are
the same; the kernel path never takes a TLS side (its bytes are ciphertext). A
handshake must finish within :data:`HANDSHAKE_WITHIN` seconds, or that connection
is closed with one log line (:mod:`poetrynow.relay.connection`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import ssl as stdlib_ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from poetrynow.relay.toxics import ApiError

#: Seconds a TLS handshake may take, on either side, before its connection is closed.
HANDSHAKE_WITHIN = 10.0
FIELDS = {"listen": True, "upstream": False, "verify_upstream": True}


@dataclass(frozen=True)
class TlsSettings:
    listen: bool = True
    upstream: bool = False
    verify_upstream: bool = True

    @classmethod
    def from_json(cls, body: Any) -> TlsSettings | None:
        """A proxy's ``tls`` (None, or absent: a plain relay); ApiError 400 for a bad one."""
        if body is None:
            return None
        if not isinstance(body, dict):
            raise ApiError(400, f"bad request body: tls must be an object, not {type(body).__name__}")
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            fields = ", ".join(FIELDS)
            raise ApiError(400, f"bad request body: tls has no field {unknown[0]!r} (it has {fields})")
        for name, value in body.items():
            if not isinstance(value, bool):
                raise ApiError(400, f"bad request body: tls.{name} must be true or false, not {value!r}")
        return cls(**{**FIELDS, **body})

    def as_json(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


def server_factory(authority: Any, wrapped: Any) -> Any:
    """``wrapped`` (the relay's factory) behind TLS, with the run's certificate."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    factory = TLSMemoryBIOFactory(
        server_creator(authority.pem["leaf"], authority.pem["leaf_key"]), False, wrapped
    )
    factory.protocol = hearing(factory.protocol)  # type: ignore[arg-type]
    return factory


@lru_cache(maxsize=4)
def hearing(base: type) -> type:
    """Twisted's TLS protocol (``base``, the factory's public ``protocol``), which also notes
    whether its peer sent a byte: a handshake that failed before any (a port probe's connect
    and close) is not logged as a failed one."""

    class Hearing(base):
        heard = False

        def dataReceived(self, data: bytes) -> None:
            self.heard = True
            super().dataReceived(data)

    return Hearing


def server_creator(cert_pem: bytes, key_pem: bytes) -> Any:
    """What makes each client's TLS connection: a context of pyOpenSSL's, made here once.

    Not Twisted's ``CertificateOptions``: with no protocols of its own it answers a
    client that offers ALPN (curl, every browser) with an empty choice, which newer
    pyOpenSSL turns into a handshake failure. This one picks ``http/1.1`` when the client
    offers it (the relay's toxics speak HTTP/1.1), and otherwise goes on without ALPN.
    TLS 1.2 at least, OpenSSL's default ciphers.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from OpenSSL import SSL, crypto
    from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
    from zope.interface import implementer

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION)
    cert = x509.load_pem_x509_certificate(cert_pem)
    key: Any = serialization.load_pem_private_key(key_pem, password=None)
    try:
        context.use_certificate(cert)
        context.use_privatekey(key)
    except TypeError:  # (a pyOpenSSL before 24.3 takes its own types only)
        context.use_certificate(crypto.X509.from_cryptography(cert))
        context.use_privatekey(crypto.PKey.from_cryptography_key(key))
    context.check_privatekey()
    none = getattr(SSL, "NO_OVERLAPPING_PROTOCOLS", b"")

    def choose(connection: Any, offered: list[bytes]) -> Any:
        return b"http/1.1" if b"http/1.1" in offered else none

    context.set_alpn_select_callback(choose)

    @implementer(IOpenSSLServerConnectionCreator)
    class Creator:
        def serverConnectionForTLS(self, protocol: Any) -> Any:
            return SSL.Connection(context, None)

    return Creator()


def client_factory(authority: Any, host: str, verify: bool, wrapped: Any) -> Any:
    """``wrapped`` (one connection's upstream factory) over TLS to ``host``, checked or not."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    return TLSMemoryBIOFactory(client_creator(authority.ca_pem, host, verify), True, wrapped)


@lru_cache(maxsize=64)
def client_creator(ca_pem: bytes, host: str, verify: bool) -> Any:
    """What makes each TLS connection to ``host``: made once (its context, and the trust root of
    the run's CA and the machine's), not for every upstream connection."""
    from twisted.internet import ssl

    if not verify:
        return unchecked_creator(host)
    trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(ca_pem), *system_cas()])
    return ssl.optionsForClientTLS(host, trustRoot=trust)


def unchecked_creator(host: str) -> Any:
    """TLS to an upstream whose certificate is not checked, naming it all the same (SNI), since a
    server that chooses its certificate by name would give another one, or refuse, without it."""
    import ipaddress

    from OpenSSL import SSL
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
    from zope.interface import implementer

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    try:
        ipaddress.ip_address(host)
        name = None  # (an address is no server name, RFC 6066)
    except ValueError:
        name = host.encode("idna")

    @implementer(IOpenSSLClientConnectionCreator)
    class Creator:
        def clientConnectionForTLS(self, protocol: Any) -> Any:
            connection = SSL.Connection(context, None)
            if name is not None:
                connection.set_tlsext_host_name(name)
            connection.set_connect_state()
            return connection

    return Creator()


@lru_cache(maxsize=1)
def system_cas() -> tuple[Any, ...]:
    """The machine's CAs, as Python's ssl module loads them by default (its bundle file), read once."""
    from OpenSSL import crypto
    from twisted.internet import ssl

    found: list[Any] = []
    ders = dict.fromkeys(stdlib_ssl.create_default_context().get_ca_certs(binary_form=True))
    ders.update(dict.fromkeys(capath_cas(stdlib_ssl.get_default_verify_paths().capath)))
    for der in ders:
        try:
            found.append(ssl.Certificate.load(der, crypto.FILETYPE_ASN1))
        except Exception:  # (a bundle's odd entry: that one is not trusted)
            continue
    return tuple(found)


#: How OpenSSL names a CA in a folder of them (c_rehash's links): the subject's hash, a number.
HASHED = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def capath_cas(folder: str | None) -> list[bytes]:
    """The CAs of a folder that OpenSSL reads by their hashed names (a system without a bundle
    file has only this; Python's context loads such CAs when a handshake asks, never before)."""
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if not HASHED.fullmatch(name):
            continue
        try:
            text = pathlib.Path(folder, name).read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for block in re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S):
            try:
                found.append(stdlib_ssl.PEM_cert_to_DER_cert(block))
            except ValueError:
                continue
    return found
