"""Where one HTTP/1.1 message ends and the next begins, in a relayed stream, bytes untouched.

The HTTP-aware toxics (:mod:`poetrynow.relay.httptoxics`) act per request or per
response, keep-alive included, so each needs the messages' edges; what they pass on
must be the peer's own bytes, so the framer reads and never rewrites (h11 would
parse them into events and serialise anew, with its own spelling). It follows
RFC 9112's rules for a message's length (:mod:`poetrynow.relay.httphead`):
``Transfer-Encoding: chunked`` (chunk sizes, extensions and trailers read through),
``Content-Length``, none for a request without either, none for a 1xx, 204 or 304
response or one to a HEAD, and to the end of the stream for a response without either.

A response's body depends on its request, which the framer of responses does not
see: after each final head it stops, *asking* (:meth:`Framer.carry_on` takes the
request's method; :mod:`poetrynow.relay.httpledger` keeps them). A framer of
requests stops there too, so that a relay may hold requests back. After a CONNECT
or an Upgrade request the request stream *waits* (held, at most :data:`MAX_HEAD`
bytes) until the answer says whether it is still HTTP (:meth:`Framer.resolve`); a
101, or a 2xx to a CONNECT, turns the rest of the response stream into bytes that
are no longer HTTP (a tunnel, a WebSocket).

Bounded: a header block over :data:`MAX_HEAD` bytes, a line over :data:`MAX_LINE`, or a
malformed message raises :class:`Malformed`; a stream whose first bytes cannot begin
an HTTP/1.1 message raises :class:`NotHttp`. What the framer holds is one line or one
header block at most (and what came while it asks, which its owner bounds).
"""

from __future__ import annotations

import re

from poetrynow.relay.httphead import MAX_LINE, TOKEN, Head, Malformed, body_of, parse

__all__ = ["MAX_HEAD", "MAX_LINE", "Event", "Framer", "Head", "Malformed", "NotHttp"]

#: The largest header block taken.
MAX_HEAD = 64 * 1024

BLANKS = re.compile(rb"[\r\n]*")
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")


class NotHttp(ValueError):
    """A stream that does not begin as HTTP/1.1 does."""


# The framer's events: ("head", Head), ("body", bytes), ("end", None), ("raw", bytes).
Event = tuple[str, object]


class Framer:
    """Requests (``requests=True``) or responses, fed as they come; :meth:`feed` gives the events.

    States: head, asking, length, chunk-size, chunk-data, chunk-end, trailers, close
    (a body to the stream's end), wait (after a CONNECT or Upgrade request), raw.
    """

    def __init__(self, requests: bool):
        self.requests = requests
        self.buffer = bytearray()
        self.state = "head"
        self.left = 0  # body bytes (or a chunk's) still to come
        self.seen = False  # a message began: after that, a bad one is malformed, not "not HTTP"
        self.after_body = "head"  # where a message's end leads
        self.asked: Head | None = None  # the head whose body waits on carry_on
        self.early: bool | None = None  # a CONNECT's or Upgrade's answer, come before its wait began
        # How far a header block still to come has been searched, and where its last line began:
        # each read searches only what it added (a head sent a byte at a time costs no rescans).
        self.scanned = self.line_start = 0

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.state == "raw":
            if self.buffer:  # (what a wait held goes first)
                data, self.buffer = bytes(self.buffer) + data, bytearray()
            return [("raw", data)] if data else []
        if self.state in ("length", "chunk-data", "close") and not self.buffer:
            if self.state == "close" or len(data) < self.left:  # (a read that is all body: as it came)
                if self.state != "close":
                    self.left -= len(data)
                return [("body", data)] if data else []
            data = self._body(memoryview(data), events)  # (a body goes on without a copy)
        self.buffer += data
        if self.state == "wait" and len(self.buffer) > MAX_HEAD:
            self.state = "raw"  # (a client that does not wait for the answer: its bytes go on as they are)
        try:
            while self.buffer and self._step(events):
                pass
        except (Malformed, NotHttp) as problem:
            setattr(problem, "events", events)  # noqa: B010  # (what was framed before it)
            raise
        return events

    def carry_on(self, asked: bytes | None) -> list[Event]:
        """Read on after a final head: ``asked`` is the method of the request a response answers
        (None: not known); a framer of requests takes None."""
        head, self.asked = self.asked, None
        assert self.state == "asking" and head is not None
        events: list[Event] = []
        self._frame(head, asked, events)
        return events + self.feed(b"")

    def resolve(self, switched: bool, early: bool = True) -> list[Event]:
        """A CONNECT or Upgrade request was answered: the stream is HTTP still, or raw from here.
        An answer that comes before the request has ended (the relay's own, while its head is
        acted on) is kept for its end, when ``early``."""
        if self.state != "wait":
            if early:
                self.early = switched
            return []
        self.state = "raw" if switched else "head"
        return self.feed(b"")

    def eof(self) -> list[Event]:
        """The stream ended: a body read to its close ends; a message cut short is malformed."""
        if self.state == "close":
            self.state = "head"
            return [("end", None)]
        if self.state == "wait":
            self.state = "raw"
            return self.feed(b"")
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
        if state in ("asking", "wait"):
            return False
        if state in ("length", "chunk-data", "close"):
            rest = self._body(memoryview(bytes(self.buffer)), events)
            self.buffer = bytearray(rest)
            return bool(self.buffer)
        line = self._line()
        if line is None:
            return False
        events.append(("body", line))
        if state == "chunk-size":
            found = CHUNK_SIZE.fullmatch(line)
            if found is None:
                raise Malformed(f"a bad chunk size line: {line[:40]!r}")
            self.left = int(found.group(1), 16)
            self.state = "chunk-data" if self.left else "trailers"
        elif state == "chunk-end":
            if line not in (b"\r\n", b"\n"):
                raise Malformed("a chunk's data is not followed by its line end")
            self.state = "chunk-size"
        elif line in (b"\r\n", b"\n"):  # (the trailers' end)
            self._ended(events)
        return True

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
        # Blank lines before a message are its own (RFC 9112 allows them): the search starts past them.
        # (Matched at the start, not stripped: a copy of the buffer at every read would cost a head
        # sent a byte at a time its length squared.)
        blanks = BLANKS.match(self.buffer).end()  # type: ignore[union-attr]
        if not self.seen:
            self._sniff(bytes(self.buffer[blanks : blanks + 16]))
        if blanks == len(self.buffer):
            if blanks > MAX_LINE:
                raise Malformed(f"over {MAX_LINE} bytes of blank lines")
            return False
        start = max(self.scanned - 2, blanks)  # (an ending may straddle the last read's end)
        crlf, lf = self.buffer.find(b"\n\r\n", start), self.buffer.find(b"\n\n", start)
        ends = [(found, found + size) for found, size in ((crlf, 3), (lf, 2)) if found >= 0]
        if not ends:
            if len(self.buffer) > MAX_HEAD:
                raise Malformed(f"a header block over {MAX_HEAD} bytes")
            last = self.buffer.rfind(b"\n", self.scanned)
            if last >= 0:
                self.line_start = last + 1
            if len(self.buffer) - max(self.line_start, blanks) > MAX_LINE:
                raise Malformed(f"a line over {MAX_LINE} bytes")
            self.scanned = len(self.buffer)
            return False
        cut = min(ends)[1]  # (the first blank line ends it, whichever its spelling)
        if cut > MAX_HEAD:
            raise Malformed(f"a header block over {MAX_HEAD} bytes")
        raw = bytes(self.buffer[:cut])
        head = parse(raw, self.requests)  # (before it leaves the buffer: a bad head stays in it)
        del self.buffer[:cut]
        self.scanned = self.line_start = 0
        self.seen = True
        events.append(("head", head))
        if head.interim and not self.requests:
            self._frame(head, None, events)  # (whole in its head: nothing to ask)
            return True
        self.state, self.asked = "asking", head
        return False

    def _sniff(self, start: bytes) -> None:
        """Whether the first bytes (``start``, past blank lines) can begin a message; NotHttp as soon
        as they cannot."""
        if not start:
            return
        if self.requests:
            word = start.split(b" ", 1)[0]
            if (word and not TOKEN.fullmatch(word)) or (b" " not in start and len(start) >= 16):
                raise NotHttp(f"its first bytes are not an HTTP request: {start!r}")
        elif not (start.startswith(b"HTTP/1.") or b"HTTP/1.".startswith(start)):
            raise NotHttp(f"its first bytes are not an HTTP response: {start!r}")

    def _frame(self, head: Head, asked: bytes | None, events: list[Event]) -> None:
        state, self.left, self.after_body = body_of(head, self.requests, asked)
        if state == "none":
            self._ended(events)
        else:
            self.state = state

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
        if self.state == "wait" and self.early is not None:
            self.state = "raw" if self.early else "head"
        self.early = None
