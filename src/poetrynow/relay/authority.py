"""The certificates of a TLS relay: a CA made for the run, and the relays' certificate it signs.

A test suite that meets a TLS relay must trust it, and nothing on the machine should
have to be installed for that: ``poetrynow faults`` makes a CA of its own (an EC P-256
key, valid for :data:`CA_DAYS` days) and a certificate for ``localhost``, ``127.0.0.1``
and ``::1`` signed by it, which every TLS relay presents. ``GET /tls/ca`` answers the
CA as PEM, for a client's ``--cacert``. They live in memory, or with ``--tls-dir DIR``
in that folder (mode 0700, the keys 0600), to be reused by the next run: the CA is
kept while it is valid, the relays' certificate is made anew when it is near its end.

The ``tls`` extra (Twisted's, which brings pyOpenSSL and cryptography) is needed, and
asked for in one line where it is missing (:func:`missing`).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import pathlib
from collections.abc import Iterator
from typing import Any

try:
    import fcntl
except ImportError:  # (not POSIX: runs do not take turns)
    fcntl = None  # type: ignore[assignment]

#: How long the CA, and the relays' certificate, are valid.
CA_DAYS, LEAF_DAYS = 825, 90
#: A relays' certificate this near its end is made anew; a CA, this near its own.
RENEW_WITHIN = datetime.timedelta(days=7)
CA_RENEW_WITHIN = datetime.timedelta(days=LEAF_DAYS)
NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1", "::1")
FILES = {"ca": "ca.pem", "ca_key": "ca-key.pem", "leaf": "relay.pem", "leaf_key": "relay-key.pem"}


def missing() -> str | None:
    """Why TLS cannot be done here (the extra is not installed), or None."""
    try:
        import cryptography  # noqa: F401
        import OpenSSL  # noqa: F401
        from twisted.internet import ssl  # noqa: F401
    except ImportError:
        return "TLS needs the tls extra: pip install 'poetrynow[tls]'"
    return None


class AuthorityError(ValueError):
    """A --tls-dir whose files cannot be read, written or used."""


class Authority:
    """The CA and the relays' certificate, as PEM; ``folder``: where they are kept, if anywhere."""

    def __init__(self, folder: str | None = None):
        self.folder = pathlib.Path(folder) if folder is not None else None
        self.pem: dict[str, bytes] = {}
        try:
            with self._locked():
                self._load_or_make()
        except OSError as problem:
            raise AuthorityError(f"--tls-dir {folder}: {problem.strerror or problem}") from None

    @property
    def ca_pem(self) -> bytes:
        return self.pem["ca"]

    # -- making and keeping

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The folder's lock, held while its files are read and made: runs started at once (a test
        suite's workers) then share one CA, instead of each writing its own over the others'."""
        if self.folder is None or fcntl is None:
            yield
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            descriptor = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except PermissionError:  # (a folder the user may read, not write: its files as they are)
            yield
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # (and the lock with it)

    def _load_or_make(self) -> None:
        from cryptography import x509

        kept = self._read()
        now = datetime.datetime.now(datetime.UTC)
        ca = ca_key = None
        if "ca" in kept and "ca_key" in kept:
            try:
                ca = x509.load_pem_x509_certificate(kept["ca"])
                ca_key = _load_key(kept["ca_key"])
            except ValueError as problem:
                raise AuthorityError(f"--tls-dir {self.folder}: its CA cannot be read ({problem})") from None
            if _not_after(ca) - CA_RENEW_WITHIN <= now or not _pair(ca, ca_key):
                ca = ca_key = None  # (near its end, or not its key: a new one, which a suite fetches again)
        if ca is None or ca_key is None:
            ca, ca_key = _make_ca(now)
            kept = {"ca": _cert_pem(ca), "ca_key": _key_pem(ca_key)}
        leaf_ok = False
        if "leaf" in kept and "leaf_key" in kept:
            try:
                leaf = x509.load_pem_x509_certificate(kept["leaf"])
                leaf_ok = (
                    _signed_by(leaf, ca)
                    and _pair(leaf, _load_key(kept["leaf_key"]))
                    and _not_after(leaf) - RENEW_WITHIN > now
                )
            except ValueError:
                leaf_ok = False
        if not leaf_ok:
            leaf, leaf_key = _make_leaf(ca, ca_key, now)
            kept["leaf"], kept["leaf_key"] = _cert_pem(leaf), _key_pem(leaf_key)
        self.pem = kept
        self._write()

    def _read(self) -> dict[str, bytes]:
        if self.folder is None or not self.folder.exists():
            return {}
        found = {}
        for key, name in FILES.items():
            path = self.folder / name
            if path.exists():
                found[key] = path.read_bytes()
        return found

    def _write(self) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for key, name in FILES.items():
            path = self.folder / name
            mode = 0o600 if key.endswith("key") else 0o644
            if path.exists() and path.read_bytes() == self.pem[key]:
                os.chmod(path, mode)  # (a key left readable by others is made the user's again)
                continue
            # Whole or not at all: a new file beside it, renamed over it (another run reads one or the other).
            fresh = path.with_name(f".{name}.{os.getpid()}")
            descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(descriptor, "wb") as f:
                f.write(self.pem[key])
            os.replace(fresh, path)


def _pair(cert: Any, key: Any) -> bool:
    """Whether ``key`` is the private key of ``cert``'s public one."""
    from cryptography.hazmat.primitives import serialization

    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki))


def _signed_by(cert: Any, ca: Any) -> bool:
    """Whether ``ca`` signed ``cert`` (its signature checked where cryptography can, 40 and later)."""
    if cert.issuer != ca.subject:
        return False
    check = getattr(cert, "verify_directly_issued_by", None)
    if check is None:
        return True
    try:
        check(ca)
    except Exception:  # (InvalidSignature, ValueError, TypeError: not this CA's)
        return False
    return True


def _not_after(cert: Any) -> datetime.datetime:
    after = getattr(cert, "not_valid_after_utc", None)
    if after is None:  # (cryptography before 42)
        after = cert.not_valid_after.replace(tzinfo=datetime.UTC)
    return after


def _load_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "poetrynow faults"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])  # fmt: skip


def _usage(signs_certificates: bool) -> Any:
    """Its key's uses: an EC key signs (the handshake), a CA's certificates and lists too."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=signs_certificates, crl_sign=signs_certificates,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _builder(subject: Any, issuer: Any, key: Any, now: datetime.datetime, until: datetime.datetime) -> Any:
    """A certificate for ``key``'s public half, from an hour ago (clocks differ) to ``until``."""
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(until)
    )


def _make_ca(now: datetime.datetime) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"poetrynow faults CA {now:%Y-%m-%d %H:%M:%S}")
    cert = (
        _builder(name, name, key, now, now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(ca: Any, ca_key: Any, now: datetime.datetime) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[Any] = [x509.DNSName(name) for name in NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ADDRESSES]
    authority_key = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    until = min(now + datetime.timedelta(days=LEAF_DAYS), _not_after(ca))
    cert = (
        _builder(_name("localhost"), ca.subject, key, now, until)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(authority_key, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key
