"""One HTTP/1.1 header block, read: its start line, its fields, and how the body after it is framed.

Apart from the framer (:mod:`poetrynow.relay.httpframe`), which finds where a block
ends, because what comes after a response's head depends on the request it answers
as well as on its own fields (RFC 9112, section 6.3): none after a HEAD request, a
tunnel after a 2xx to a CONNECT, another protocol after a 101. The framer asks for
that request (:func:`body_of` takes its method) before it reads on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: The longest line (start line, header, chunk size) taken.
MAX_LINE = 8 * 1024

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) [^ \r\n]+ HTTP/1\.([01])\r?\n")
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r?\n")


class Malformed(ValueError):
    """A message that breaks HTTP/1.1's rules or the framer's bounds."""


@dataclass(frozen=True)
class Head:
    """A message's header block, as it came, and what its framing needs."""

    raw: bytes
    method: bytes = b""  # a request's
    status: int = 0  # a response's
    fields: dict[bytes, list[bytes]] = field(default_factory=dict, compare=False, repr=False)
    old: bool = False  # a request in HTTP/1.0

    @property
    def interim(self) -> bool:
        """A 1xx other than 101: the response it announces comes after it, on its own head."""
        return 100 <= self.status < 200 and self.status != 101

    @property
    def switching(self) -> bool:
        """A request after which the stream may stop being HTTP (a tunnel, or a new protocol)."""
        return self.method == b"CONNECT" or b"upgrade" in self.fields


def parse(raw: bytes, requests: bool) -> Head:
    """``raw``, a whole header block (its blank lines before it included), as a Head."""
    lines = raw.lstrip(b"\r\n").split(b"\n")
    if max(len(line) for line in lines) + 1 > MAX_LINE:
        raise Malformed(f"a line over {MAX_LINE} bytes")
    first = lines[0] + b"\n"
    fields: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise Malformed(f"a bad header line: {line[:40]!r}")
        fields.setdefault(name.lower(), []).append(value.strip())
    if requests:
        found = REQUEST_LINE.fullmatch(first)
        if found is None:
            raise Malformed(f"a bad request line: {first[:60]!r}")
        return Head(raw, method=found.group(1), fields=fields, old=found.group(2) == b"0")
    found = STATUS_LINE.fullmatch(first)
    if found is None:
        raise Malformed(f"a bad status line: {first[:60]!r}")
    return Head(raw, status=int(found.group(1)), fields=fields)


def body_of(head: Head, requests: bool, asked: bytes | None) -> tuple[str, int, str]:
    """How the body after ``head`` is framed, and what follows it: ``(state, length, after)``.

    ``state`` is ``none``, ``length`` (``length`` bytes), ``chunk-size`` or ``close``
    (to the end of the stream); ``after`` is ``head`` (another message), ``wait``
    (a request's stream after a CONNECT or an Upgrade, until its answer says which)
    or ``raw`` (no more HTTP). ``asked`` is the method of the request a response
    answers, when it is known.
    """
    after = "wait" if requests and head.switching else "head"
    if not requests:
        if head.status == 101 or (asked == b"CONNECT" and 200 <= head.status < 300):
            return "none", 0, "raw"  # (a protocol switched to, or a tunnel: its bytes are no HTTP)
        if asked == b"HEAD" or head.status < 200 or head.status in (204, 304):
            return "none", 0, "head"
    codings = b",".join(head.fields.get(b"transfer-encoding", [])).lower()
    declared = b",".join(head.fields.get(b"content-length", [])).split(b",")
    lengths = {value.strip() for value in declared if value.strip()}
    if codings and requests and (lengths or head.old):
        # Both lengths, or chunked in HTTP/1.0: peers may read it two ways (request smuggling).
        raise Malformed("a request with Transfer-Encoding and Content-Length, or chunked in HTTP/1.0")
    if codings:
        if codings.rsplit(b",", 1)[-1].strip() == b"chunked":
            return "chunk-size", 0, after
        if requests:
            raise Malformed("a request whose last transfer coding is not chunked")
        return "close", 0, after
    if lengths:
        if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
            raise Malformed(f"a bad Content-Length: {b', '.join(sorted(lengths))!r}")
        length = int(next(iter(lengths)))
        return ("length" if length else "none"), length, after
    return ("none" if requests else "close"), 0, after
