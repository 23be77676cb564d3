"""Netstrings (``len:payload,``) as a sans-I/O codec with a length limit.

The transform protocol sends exactly one netstring each way. The decoder is fed
bytes as they arrive, in any split, and returns whole payloads; anything that is
not a netstring, or announces more than ``max_length`` bytes, raises
:class:`NetstringError` at once, before the payload is buffered, so a hostile
peer cannot make the server hold a gigabyte. After an error the decoder stays
broken: the connection is to be dropped.
"""

from __future__ import annotations

DEFAULT_MAX_LENGTH = 1 << 20  # 1 MiB


class NetstringError(ValueError):
    """The bytes are not a netstring, or not one short enough."""


def encode(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class NetstringDecoder:
    """Feed bytes in, get complete payloads out."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH):
        if max_length < 0:
            raise ValueError("max_length must not be negative")
        self.max_length = max_length
        self._max_digits = len(str(max_length))
        self._buffer = bytearray()
        self._length: int | None = None  # known once the ':' has arrived
        self._error: NetstringError | None = None

    def feed(self, data: bytes, most: int | None = None) -> list[bytes]:
        """The netstrings completed by ``data``; with ``most``, no more than that many are
        decoded, and whatever follows them is left unread (a one-request protocol's peer
        may send a stray newline after its request)."""
        if self._error:
            raise self._error
        self._buffer += data
        payloads: list[bytes] = []
        try:
            while most is None or len(payloads) < most:
                payload = self._next()
                if payload is None:
                    return payloads
                payloads.append(payload)
            return payloads
        except NetstringError as error:
            self._error = error
            self._buffer.clear()
            raise

    @property
    def pending(self) -> bool:
        """Whether part of a netstring is waiting for more bytes."""
        return bool(self._buffer) or self._length is not None

    def _next(self) -> bytes | None:
        if self._length is None:
            colon = self._buffer.find(b":", 0, self._max_digits + 1)
            if colon < 0:
                self._check_digits(bytes(self._buffer[: self._max_digits + 1]), complete=False)
                return None
            digits = bytes(self._buffer[:colon])
            self._check_digits(digits, complete=True)
            length = int(digits)
            if length > self.max_length:
                raise NetstringError(f"netstring of {length} bytes is over the limit of {self.max_length}")
            self._length = length
            del self._buffer[: colon + 1]
        if len(self._buffer) < self._length + 1:
            return None
        if self._buffer[self._length] != ord(","):
            raise NetstringError("netstring does not end with ','")
        payload = bytes(self._buffer[: self._length])
        del self._buffer[: self._length + 1]
        self._length = None
        return payload

    def _check_digits(self, digits: bytes, complete: bool) -> None:
        """Reject a bad length as early as its bytes show it, ':' or not."""
        if complete and not digits:
            raise NetstringError("netstring has no length")
        if digits and not digits.isdigit():
            raise NetstringError("netstring length is not a number")
        if len(digits) > self._max_digits:
            raise NetstringError(f"netstring length is over the limit of {self.max_length}")
        if len(digits) > 1 and digits.startswith(b"0"):
            raise NetstringError("netstring length has a leading zero")
