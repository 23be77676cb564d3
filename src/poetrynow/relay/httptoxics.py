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
What a stage holds counts against its direction's limit, like every toxic's. What they
share (the framing, the fates, the ordered output) is :mod:`poetrynow.relay.httpstage`.
"""

from __future__ import annotations

from functools import partial

from poetrynow.relay.httpattributes import answer_bytes
from poetrynow.relay.httpframe import Head
from poetrynow.relay.httpstage import HttpStage
from poetrynow.relay.stages import Stage

#: slow_body sends a tenth of a second's worth at a time, as bandwidth does.
SLICE = 0.1


class HttpStatus(HttpStage):
    """A request met is answered by the relay itself; none of it goes upstream. The answer goes
    after the responses to the requests before it (:mod:`poetrynow.relay.httpledger`)."""

    swallowing = False
    asked_head = False  # the request swallowed is a HEAD: its answer has no body

    def head(self, head: Head) -> None:
        self.swallowing = self.met
        if not self.met:
            return super().head(head)
        self.asked_head = head.method == b"HEAD"
        if self.asked is not None:
            self.asked.swallowed = True

    def body(self, data: bytes) -> None:
        if not self.swallowing:
            super().body(data)

    def end(self) -> None:
        if self.swallowing:
            self.swallowing = False
            code = self.attributes["code"]
            self.hooks.answer(self.asked, answer_bytes(self.attributes, bodiless=self.asked_head), code)
            if self.leaving:
                self.emit(partial(self.hooks.leave, self))  # (after what it holds)

    def lingers(self) -> bool:
        return self.swallowing

    def give_up(self) -> None:
        if self.swallowing and self.asked is not None:
            self.swallowing = False
            self.hooks.forget(self.asked)


class HttpLatency(HttpStage):
    def head(self, head: Head) -> None:
        if not self.met:
            return super().head(head)
        latency, jitter = self.attributes["latency"], self.attributes["jitter"]
        wobble = self.chooser.uniform(-jitter, jitter) if jitter else 0.0
        self.hand_on()
        self.emit(head.raw, self.hooks.now() + max(latency + wobble, 0) / 1000)


class HttpSlowHeaders(HttpStage):
    def head(self, head: Head) -> None:
        if not self.met:
            return super().head(head)
        start, delay = max(self.hooks.now(), self.last), self.attributes["delay"] / 1000
        self.hand_on()
        for number, line in enumerate(head.raw.splitlines(keepends=True)):
            self.emit(line, start + number * delay)


class HttpSlowBody(HttpStage):
    """The body at ``rate`` KB/s, paced as it is written: after a stall, the same pace, no burst."""

    def body(self, data: bytes) -> None:
        rate = self.attributes["rate"] * 1000
        if not self.met or not rate:
            return super().body(data)
        size = max(int(rate * SLICE), 1)
        for offset in range(0, len(data), size):
            piece = data[offset : offset + size]
            self.emit(piece, spacing=len(piece) / rate)


class HttpDrop(HttpStage):
    dropping = False

    def head(self, head: Head) -> None:
        if not self.met:
            return super().head(head)
        if self.attributes["after"] == "headers":
            super().head(head)
            self.emit(self.end_here)
        elif self.asked is not None:
            self.asked.swallowed = True  # (no answer comes to it: the connection ends with it)
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
            if self.leaving:
                self.emit(partial(self.hooks.leave, self))  # (after its close, in its turn)

    def give_up(self) -> None:
        if self.dropping and self.attributes["after"] == "request" and self.asked is not None:
            self.hooks.forget(self.asked)  # (its close may be lost with it: the request is no one's)

    def lingers(self) -> bool:
        return self.dropping and self.attributes["after"] == "request"


HTTP_STAGES: dict[str, type[Stage]] = {
    "http_status": HttpStatus,
    "http_latency": HttpLatency,
    "http_slow_headers": HttpSlowHeaders,
    "http_slow_body": HttpSlowBody,
    "http_drop": HttpDrop,
}
