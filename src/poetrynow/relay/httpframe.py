"""Where one HTTP/1.1 message ends and the next begins, in a relayed stream, bytes untouched.

The HTTP-aware toxics (:mod:`poetrynow.relay.httptoxics`) act per request or per
response, keep-alive included, so each needs the messages' edges; what they pass on
must be the peer's own bytes, so the framer reads and never rewrites (h11 would
parse them into events and serialise anew, with its own spelling). It follows
RFC 9112's rules for a message's length: ``Transfer-Encoding: chunked`` (chunk sizes,
extensions and trailers read through), ``Content-Length``, none for a request without
either, none for a 1xx, 204 or 304 response, and to the end of the stream for a
response without either. A ``CONNECT``, an ``Upgrade`` request and a 101 response
turn the rest of the stream into bytes that are no longer HTTP (a tunnel, a WebSocket).

Bounded: a header block over :data:`MAX_HEAD` bytes, a line over :data:`MAX_LINE`, or a
malformed message raises :class:`Malformed`; a stream whose first bytes cannot begin
an HTTP/1.1 message raises :class:`NotHttp`. What the framer holds is one line or one
header block at most. A response to a HEAD request is read as its headers say (the
framer sees one direction only): its toxic may take the next response for its body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The largest header block, and the longest line (start line, header, chunk size), taken.
MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) [^ \r\n]+ HTTP/1\.[01]\r?\n")
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r?\n")
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")


class Malformed(ValueError):
    """A message that breaks HTTP/1.1's rules or the framer's bounds."""


class NotHttp(ValueError):
    """A stream that does not begin as HTTP/1.1 does."""


@dataclass(frozen=True)
class Head:
    """A message's header block, as it came, and what its framing needs."""

    raw: bytes
    method: bytes = b""  # a request's
    status: int = 0  # a response's


# The framer's events: ("head", Head), ("body", bytes), ("end", None), ("raw", bytes).
Event = tuple[str, object]


class Framer:
    """Requests (``requests=True``) or responses, fed as they come; :meth:`feed` gives the events."""

    def __init__(self, requests: bool):
        self.requests = requests
        self.buffer = bytearray()
        self.state = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailers, close, raw
        self.left = 0  # body bytes (or a chunk's) still to come
        self.seen = False  # a message began: after that, a bad one is malformed, not "not HTTP"
        self.after_body = "head"  # where a message's end leads (raw after a CONNECT or Upgrade)
        # How far a header block still to come has been searched, and where its last line began:
        # each read searches only what it added (a head sent a byte at a time costs no rescans).
        self.scanned = self.line_start = 0

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.state == "raw":
            return [("raw", data)] if data else []
        if self.state in ("length", "chunk-data", "close") and not self.buffer:
            data = self._body(memoryview(data), events)  # (a body goes on without a copy)
        self.buffer += data
        while self.buffer and self._step(events):
            pass
        return events

    def eof(self) -> list[Event]:
        """The stream ended: a body read to its close ends; a message cut short is malformed."""
        if self.state == "close":
            self.state = "head"
            return [("end", None)]
        if self.state not in ("head", "raw") or self.buffer.strip():
            raise Malformed("the stream ended inside a message")
        return []

    # -- one step over the buffer; False when it needs more bytes

    def _step(self, events: list[Event]) -> bool:
        state = self.state
        if state == "raw":
            events.append(("raw", bytes(self.buffer)))
            self.buffer.clear()
            return False
        if state == "head":
            return self._head(events)
        if state in ("length", "chunk-data", "close"):
            rest = self._body(memoryview(bytes(self.buffer)), events)
            self.buffer = bytearray(rest)
            return bool(self.buffer)
        if state == "chunk-size":
            line = self._line()
            if line is None:
                return False
            found = CHUNK_SIZE.fullmatch(line)
            if found is None:
                raise Malformed(f"a bad chunk size line: {line[:40]!r}")
            self.left = int(found.group(1), 16)
            events.append(("body", line))
            self.state = "chunk-data" if self.left else "trailers"
            return True
        if state == "chunk-end":
            line = self._line()
            if line is None:
                return False
            if line not in (b"\r\n", b"\n"):
                raise Malformed("a chunk's data is not followed by its line end")
            events.append(("body", line))
            self.state = "chunk-size"
            return True
        if state == "trailers":
            line = self._line()
            if line is None:
                return False
            events.append(("body", line))
            if line in (b"\r\n", b"\n"):
                self._ended(events)
            return True
        raise AssertionError(state)

    def _line(self) -> bytes | None:
        at = self.buffer.find(b"\n")
        if at < 0:
            if len(self.buffer) > MAX_LINE:
                raise Malformed(f"a line over {MAX_LINE} bytes")
            return None
        if at + 1 > MAX_LINE:
            raise Malformed(f"a line over {MAX_LINE} bytes")
        line = bytes(self.buffer[: at + 1])
        del self.buffer[: at + 1]
        return line

    def _head(self, events: list[Event]) -> bool:
        if not self.seen:
            self._sniff()
        start = max(self.scanned - 2, 0)  # (an ending may straddle the last read's end)
        end = self.buffer.find(b"\n\r\n", start)
        cut = end + 3
        if end < 0:
            end = self.buffer.find(b"\n\n", start)
            cut = end + 2
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise Malformed(f"a header block over {MAX_HEAD} bytes")
            last = self.buffer.rfind(b"\n", self.scanned)
            if last >= 0:
                self.line_start = last + 1
            if len(self.buffer) - self.line_start > MAX_LINE:
                raise Malformed(f"a line over {MAX_LINE} bytes")
            self.scanned = len(self.buffer)
            return False
        if cut > MAX_HEAD:
            raise Malformed(f"a header block over {MAX_HEAD} bytes")
        raw = bytes(self.buffer[:cut])
        del self.buffer[:cut]
        self.scanned = self.line_start = 0
        self.seen = True
        head = self._parse(raw)
        events.append(("head", head))
        if self.state == "end-pending":  # (no body: the message ends with its head)
            self._ended(events)
        return True

    def _sniff(self) -> None:
        """Whether the first bytes can begin a message; NotHttp as soon as they cannot."""
        start = bytes(self.buffer.lstrip(b"\r\n"))[:16]
        if not start:
            return
        if self.requests:
            word = start.split(b" ", 1)[0]
            if (word and not TOKEN.fullmatch(word)) or (b" " not in start and len(start) >= 16):
                raise NotHttp(f"its first bytes are not an HTTP request: {start!r}")
        elif not (start.startswith(b"HTTP/1.") or b"HTTP/1.".startswith(start)):
            raise NotHttp(f"its first bytes are not an HTTP response: {start!r}")

    def _parse(self, raw: bytes) -> Head:
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
        if self.requests:
            found = REQUEST_LINE.fullmatch(first)
            if found is None:
                raise Malformed(f"a bad request line: {first[:60]!r}")
            head = Head(raw, method=found.group(1))
        else:
            found = STATUS_LINE.fullmatch(first)
            if found is None:
                raise Malformed(f"a bad status line: {first[:60]!r}")
            head = Head(raw, status=int(found.group(1)))
        self._framing(head, fields)
        return head

    def _framing(self, head: Head, fields: dict[bytes, list[bytes]]) -> None:
        """The body's length from the head (RFC 9112, section 6)."""
        codings = b",".join(fields.get(b"transfer-encoding", [])).lower()
        declared = b",".join(fields.get(b"content-length", [])).split(b",")
        lengths = {value.strip() for value in declared if value.strip()}
        self.after_body = "head"
        if self.requests and (head.method == b"CONNECT" or b"upgrade" in fields):
            self.after_body = "raw"  # (a tunnel, or a protocol switched to: no more HTTP to frame)
        if not self.requests and head.status == 101:
            self.after_body = "raw"  # (the protocol switched to: its bytes are no HTTP)
            self._ended_now()
            return
        if not self.requests and (head.status < 200 or head.status in (204, 304)):
            self._ended_now()  # (a 1xx is whole in its head; the final response comes after it)
            return
        if (
            codings
            and self.requests
            and (lengths or head.raw.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip().endswith(b"1.0"))
        ):
            # Both lengths, or chunked in HTTP/1.0: peers may read it two ways (request smuggling).
            raise Malformed("a request with Transfer-Encoding and Content-Length, or chunked in HTTP/1.0")
        if codings:
            if codings.rsplit(b",", 1)[-1].strip() != b"chunked":
                if self.requests:
                    raise Malformed("a request whose last transfer coding is not chunked")
                self.state = "close"
                return
            self.state = "chunk-size"
            return
        if lengths:
            if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
                raise Malformed(f"a bad Content-Length: {b', '.join(sorted(lengths))!r}")
            self.left = int(next(iter(lengths)))
            self.state = "length"
            if not self.left:
                self._ended_now()
            return
        if self.requests:
            self._ended_now()
        else:
            self.state = "close"

    def _ended_now(self) -> None:
        self.state = "end-pending"

    def _body(self, data: memoryview, events: list[Event]) -> bytes:
        """Body bytes of ``data`` as events; what is past the body, given back."""
        if self.state == "close":
            if len(data):
                events.append(("body", bytes(data)))
            return b""
        piece = data[: self.left]
        if len(piece):
            events.append(("body", bytes(piece)))
        self.left -= len(piece)
        rest = bytes(data[len(piece) :])
        if not self.left:
            if self.state == "chunk-data":
                self.state = "chunk-end"
            else:
                self._ended(events)
        return rest

    def _ended(self, events: list[Event]) -> None:
        events.append(("end", None))
        self.state = self.after_body
