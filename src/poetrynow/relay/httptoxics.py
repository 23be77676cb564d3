"""Toxics that know HTTP/1.1: they act per request or per response, keep-alive included.

toxiproxy's toxics act on bytes, per connection; its users have asked since 2015 for
ones that speak the protocol. Each of these reads its direction's messages with
:mod:`poetrynow.relay.httpframe` (the bytes pass untouched) and meets a message, not
a connection, with its ``toxicity`` (drawn per message from the connection's seeded
generator, so ``--seed`` repeats a run's fates):

- ``http_status`` ``{"code": 503, "body": "", "headers": {}}`` (requests): the relay
  answers the request itself, and it never reaches the upstream;
- ``http_latency`` ``{"latency": ms, "jitter": ms}``: the message waits that long before
  its first byte; later ones never overtake it;
- ``http_slow_headers`` ``{"delay": ms}``: its header lines one at a time, that far apart;
- ``http_slow_body`` ``{"rate": KB/s}``: its headers at once, its body at that rate;
- ``http_drop`` ``{"after": "headers" | "request"}``: the connection is closed once the
  message's headers have gone on, or (requests) once the request has come whole, none
  of it sent on.

A stream whose first bytes are not HTTP is passed on untouched, with one log line, and
the relay then refuses HTTP toxics (a 400 that says why); a malformed message, a
header block over 64 KiB or a line over 8 KiB costs its connection, with one log line.
What a stage holds counts against its direction's limit, like every toxic's.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from poetrynow.relay.httpattributes import answer_bytes
from poetrynow.relay.httpframe import Framer, Head, Malformed, NotHttp
from poetrynow.relay.stages import Hooks, Queued, Stage

#: slow_body sends a tenth of a second's worth at a time, as bandwidth does.
SLICE = 0.1


class HttpStage(Queued):
    """What every HTTP toxic shares: the framing, the fate of each message, and an ordered output
    where each item may wait for its moment (``emit(item, due)``), so that no message overtakes
    another; while the writer is full nothing is sent (:meth:`resume` goes on). The timer, the
    stall and the resume are :class:`~poetrynow.relay.stages.Queued`'s; its queue of chunks is
    not used (this one's items have a due time each, and may be a call)."""

    def __init__(self, hooks: Hooks, attributes: dict[str, Any], chooser: random.Random):
        self.framer = Framer(requests=attributes.get("stream") == "upstream")
        self.out: deque[tuple[float, Any]] = deque()  # (due, bytes | None for the FIN | a call)
        self.last = 0.0
        self.raw = False  # not HTTP: everything passes untouched
        self.met = False  # the message under way meets the toxic
        super().__init__(hooks, attributes, chooser)

    # -- in

    joined = False  # added to a connection that had carried bytes: it may begin mid-message
    ended_one = False  # a message of this stage's has ended: it knows where messages begin

    def write(self, data: bytes) -> None:
        if self.raw:
            self.emit(data)
            return
        try:
            events = self.framer.feed(data)
        except (NotHttp, Malformed) as problem:
            if self.joined and not self.ended_one:  # (it came in mid-message)
                self.untouched("an HTTP toxic joined it mid-message", malformed=None)
            elif isinstance(problem, NotHttp):
                self.untouched(str(problem), malformed=False)
            else:
                self.hooks.http_fault(f"{problem}; it is reset", malformed=True)
            return
        self.dispatch(events)

    def untouched(self, why: str, malformed: bool | None) -> None:
        """From here on, this connection's bytes go on as they are, those the framer holds first."""
        self.raw = True
        self.hooks.http_fault(f"{why}; its bytes go on untouched", malformed=malformed)
        self.emit(bytes(self.framer.buffer))

    def dispatch(self, events: list[Any]) -> None:
        for kind, value in events:
            if self.detached:
                return
            if kind == "head":
                assert isinstance(value, Head)
                self.met = self.chooser.random() < self.attributes["toxicity"]
                self.head(value)
            elif kind == "body":
                assert isinstance(value, bytes)
                self.body(value)
            elif kind == "end":
                self.ended_one = True
                self.end()
            else:
                assert isinstance(value, bytes)
                self.raw = True
                self.emit(value)

    def finish(self) -> None:
        if not self.raw:
            try:
                events = self.framer.eof()
            except Malformed:
                events = []  # (a peer that stops mid-message: its FIN goes on all the same)
            for kind, _ in events:
                if kind == "end":
                    self.end()
        self.emit(None)

    # -- what a toxic changes: each message's head, body and end

    def head(self, head: Head) -> None:
        self.emit(head.raw)

    def body(self, data: bytes) -> None:
        self.emit(data)

    def end(self) -> None:
        pass

    # -- out, in order

    def emit(self, item: Any, due: float | None = None) -> None:
        now = self.hooks.now()
        due = max(due if due is not None else now, self.last)
        self.last = due
        if not self.out and due <= now and not (isinstance(item, bytes) and self.hooks.blocked()):
            self.deliver(item)
            return
        if isinstance(item, bytes):
            if not item:
                return
            self.held += len(item)
        self.out.append((due, item))
        if self.idle():
            self.send()

    def deliver(self, item: Any) -> None:
        if item is None:
            self.next.finish()
        elif isinstance(item, bytes):
            if item:
                self.next.write(item)
        else:
            item()

    def send(self) -> None:
        self.timer = None
        now = self.hooks.now()
        while self.out and not self.detached:
            due, item = self.out[0]
            if due > now:
                self.arm(due - now, self.send)
                return
            if isinstance(item, bytes) and self.stall():
                return
            self.out.popleft()
            if isinstance(item, bytes):
                self.held -= len(item)
                self.deliver(item)
                self.hooks.moved()
            else:
                self.deliver(item)

    def detach(self) -> tuple[list[bytes], bool]:
        self.detached = True
        self.disarm()
        chunks = [item for _, item in self.out if isinstance(item, bytes)]
        finishing = any(item is None for _, item in self.out)
        if self.framer.buffer and not self.raw:
            chunks.append(bytes(self.framer.buffer))  # (a message begun: its bytes go on as they are)
        self.out.clear()
        self.held = 0
        return chunks, finishing


class HttpStatus(HttpStage):
    """A request met is answered by the relay itself; none of it goes upstream."""

    swallowing = False

    def head(self, head: Head) -> None:
        self.swallowing = self.met
        if not self.met:
            super().head(head)

    def body(self, data: bytes) -> None:
        if not self.swallowing:
            super().body(data)

    def end(self) -> None:
        if self.swallowing:
            self.swallowing = False
            self.hooks.reply(answer_bytes(self.attributes))


class HttpLatency(HttpStage):
    def head(self, head: Head) -> None:
        if not self.met:
            return super().head(head)
        latency, jitter = self.attributes["latency"], self.attributes["jitter"]
        wobble = self.chooser.uniform(-jitter, jitter) if jitter else 0.0
        self.emit(head.raw, self.hooks.now() + max(latency + wobble, 0) / 1000)


class HttpSlowHeaders(HttpStage):
    def head(self, head: Head) -> None:
        if not self.met:
            return super().head(head)
        start, delay = max(self.hooks.now(), self.last), self.attributes["delay"] / 1000
        for number, line in enumerate(head.raw.splitlines(keepends=True)):
            self.emit(line, start + number * delay)


class HttpSlowBody(HttpStage):
    def body(self, data: bytes) -> None:
        rate = self.attributes["rate"] * 1000
        if not self.met or not rate:
            return super().body(data)
        at, size = max(self.hooks.now(), self.last), max(int(rate * SLICE), 1)
        for offset in range(0, len(data), size):
            piece = data[offset : offset + size]
            self.emit(piece, at)
            at += len(piece) / rate


class HttpDrop(HttpStage):
    dropping = False

    def head(self, head: Head) -> None:
        if not self.met:
            return super().head(head)
        if self.attributes["after"] == "headers":
            super().head(head)
            self.emit(self.end_here)
        self.dropping = True

    def end_here(self) -> None:
        """A FIN that closes the connection once written: what later toxics hold goes first."""
        self.hooks.closing()
        self.next.finish()

    def body(self, data: bytes) -> None:
        if not self.dropping:
            super().body(data)

    def end(self) -> None:
        if self.dropping and self.attributes["after"] == "request":
            self.emit(self.end_here)


HTTP_STAGES: dict[str, type[Stage]] = {
    "http_status": HttpStatus,
    "http_latency": HttpLatency,
    "http_slow_headers": HttpSlowHeaders,
    "http_slow_body": HttpSlowBody,
    "http_drop": HttpDrop,
}
