"""What every stage that knows HTTP shares: its framing, each message's fate, and an ordered output.

A stage of :mod:`poetrynow.relay.httptoxics` (and the relay's own two watchers,
:mod:`poetrynow.relay.httpledger`) frames the bytes it is given
(:mod:`poetrynow.relay.httpframe`) and meets each final message, not the connection,
by its toxicity. A response's framing needs the request it answers (a HEAD has no
body, a 2xx to a CONNECT opens a tunnel), which this direction's framers cannot
see: the relay's watcher at the head of each direction knows it (:class:`Asked`),
and each stage hands it on to the next framer of its direction together with the
head (:class:`HandOn`, an item of its output that goes just before the head's
bytes), so that a framer learns of each head's request in the order the heads
reach it, whatever toxics hold them between.

The output is ordered, each item with its moment (``emit(item, due, spacing)``): no
message overtakes another, and a paced item keeps the next one ``spacing``
seconds behind it from when it was written, so a stall (the writer full) is
followed by the same pace, not a burst. The timer, the stall and the resume are
:class:`~poetrynow.relay.stages.Queued`'s; its queue of chunks is not used.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from poetrynow.relay.httpframe import Event, Framer, Head, Malformed, NotHttp
from poetrynow.relay.stages import Hooks, Queued


@dataclass(eq=False)
class Asked:
    """One request a connection's client sent, as the relay read it."""

    method: bytes
    switching: bool  # a CONNECT or an Upgrade: its answer says whether HTTP goes on
    swallowed: bool = False  # a toxic took it (http_status, http_drop): the upstream never answers it
    answer: bytes | None = None  # http_status's answer, once the request has come whole
    code: int = 0  # that answer's status


class HandOn:
    """An item of a stage's output: the request the head after it is (or answers), for the next framer."""

    __slots__ = ("asked",)

    def __init__(self, asked: Asked | None):
        self.asked = asked


def switched(asked: Asked | None, status: int) -> bool:
    """Whether a final response of ``status`` to ``asked`` leaves HTTP behind."""
    return status == 101 or (asked is not None and asked.method == b"CONNECT" and 200 <= status < 300)


class HttpStage(Queued):
    """See the module. Subclasses change :meth:`head`, :meth:`body` and :meth:`end` of each message."""

    joined = False  # added to a connection that had carried bytes: it may begin mid-message
    ended_one = False  # a message of this stage's has ended: it knows where messages begin

    def __init__(self, hooks: Hooks, attributes: dict[str, Any], chooser: random.Random):
        self.framer = Framer(requests=attributes.get("stream") == "upstream")
        self.inbox: deque[Asked | None] = deque()  # what the heads still to come are
        self.out: deque[tuple[float, Any, float]] = deque()  # (due, item, spacing after it)
        self.last = 0.0  # the latest due so far: none goes before it
        self.free_at = 0.0  # a paced item's pace: nothing goes before it
        self.raw = False  # not HTTP (or no longer): everything passes untouched
        self.met = False  # the message under way meets the toxic
        self.final = False  # the message under way is final (a request, or a response but a 1xx)
        self.asked: Asked | None = None  # the request the message under way is, or answers
        self.events: deque[Event] = deque()  # framed, not yet acted on
        self.running = False
        self.orphans: list[Asked | None] = []  # what detach left for the next framer
        super().__init__(hooks, attributes, chooser)

    # -- in

    def write(self, data: bytes) -> None:
        if self.raw:
            self.emit(data)
            return
        try:
            events = self.framer.feed(data)
        except (NotHttp, Malformed) as problem:
            self.events.extend(getattr(problem, "events", []))  # (framed before it: its bytes go on)
            self.failed(problem)
            return
        self.run(events)

    def resolve(self, asked: Asked | None, status: int) -> None:
        """A CONNECT or Upgrade request, ``asked``, was answered with ``status`` (this is a stage of
        requests); None: a request the relay could not match, for a stage that waits."""
        if self.raw or (asked is not None and asked is not self.asked):
            return
        if asked is None and self.asked is not None and self.asked.swallowed:
            return  # (the relay answers that one itself: its own answer resolves it)
        is_switched = switched(asked or self.asked, status)
        self.run(self.framer.resolve(is_switched, early=asked is not None))

    def failed(self, problem: Exception) -> None:
        if self.joined and not self.ended_one:  # (it came in mid-message)
            self.untouched("an HTTP toxic joined it mid-message", malformed=None)
        elif isinstance(problem, NotHttp):
            self.untouched(str(problem), malformed=False)
        else:
            self.hooks.http_fault(f"{problem}; it is reset", malformed=True)

    def untouched(self, why: str, malformed: bool | None) -> None:
        """From here on, this connection's bytes go on as they are, those the framer holds first."""
        held = b"".join(self.pending())
        self.raw = True
        self.events.clear()
        self.framer.buffer.clear()
        self.emit(held)  # (first: what giving up lets go, answers or requests, comes after)
        self.pass_on(self.inbox)  # (what the heads still to come are: the next framer's)
        self.inbox.clear()
        self.give_up()
        self.gone_raw()
        self.hooks.http_fault(f"{why}; its bytes go on untouched", malformed=malformed)

    def give_up(self) -> None:
        """It stops framing (untouched, or its toxic removed): a request it swallowed and will not
        answer is no longer waited for."""

    def framing(self) -> bool:
        return not self.raw

    def holds(self) -> bool:
        # Bytes on their way out, whose head's request may have been handed on already. (What it has
        # framed and not acted on, or a head still in its framer, hands its request on in turn.)
        return any(isinstance(item, bytes) for _, item, _ in self.out)

    def behind(self) -> None:
        # It cannot learn what the messages held before it are (their requests went by): untouched.
        self.untouched("an HTTP toxic joined it while messages were under way", malformed=None)

    def gone_raw(self) -> None:
        """The stream is no longer framed here (not HTTP, or HTTP no longer)."""

    def ready(self, head: Head) -> bool:
        """Whether the next message may be acted on now (the relay's watcher may hold one back)."""
        return True

    def run(self, events: list[Event]) -> None:
        """Act on ``events`` in order; re-entered (a hook that leads back here), it only queues them."""
        self.events.extend(events)
        if self.running:
            return
        self.running = True
        try:
            while self.events and not self.detached and not self.raw:
                kind, value = self.events[0]
                if kind == "head" and not self.ready(value):  # type: ignore[arg-type]
                    return
                self.events.popleft()
                self.act(kind, value)
        except (NotHttp, Malformed) as problem:
            self.failed(problem)
        finally:
            self.running = False

    def act(self, kind: str, value: Any) -> None:
        if kind == "head":
            self.final = self.framer.requests or not value.interim
            self.met = False
            if self.final:
                self.asked = self.asked_for(value)
                self.met = self.meets()
                self.head(value)
            else:
                self.emit(value.raw)  # (a 1xx goes on as it is: the final response is what a toxic meets)
            if self.final and self.framer.state == "asking":  # (after a 1xx it asks of the next head)
                method = self.asked.method if self.asked is not None else None
                self.events.extend(self.framer.carry_on(None if self.framer.requests else method))
        elif kind == "body":
            self.body(value)
        elif kind == "end":
            self.ended_one = True
            self.end()
        else:
            self.raw = True
            self.emit(value)  # (before what going raw lets out)
            self.gone_raw()

    def asked_for(self, head: Head) -> Asked | None:
        """The request this final head is, or answers: what the stage before handed on."""
        return self.inbox.popleft() if self.inbox else None

    def meets(self) -> bool:
        return self.chooser.random() < self.attributes["toxicity"]

    def finish(self) -> None:
        if not self.raw:
            try:
                events = self.framer.eof()
            except Malformed:  # (a peer that stops mid-message: what it sent, and its FIN, go on)
                events = [("raw", b"".join(self.pending()))]
                self.framer.buffer.clear()
            self.run(events)
        self.emit(None)

    # -- what a toxic changes: each message's head, body and end

    def head(self, head: Head) -> None:
        self.hand_on()
        self.emit(head.raw)

    def body(self, data: bytes) -> None:
        self.emit(data)

    def end(self) -> None:
        pass

    def hand_on(self) -> None:
        """The head about to be emitted goes with what it is, for the next framer."""
        self.emit(HandOn(self.asked))

    def pass_on(self, asked: Iterable[Asked | None]) -> None:
        if (framer := self.hooks.framer_after(self)) is not None:
            framer.inbox.extend(asked)

    # -- out, in order

    def emit(self, item: Any, due: float | None = None, spacing: float = 0.0) -> None:
        now = self.hooks.now()
        due = max(due if due is not None else now, self.last)
        self.last = due
        if isinstance(item, bytes) and not item:
            return
        waits = isinstance(item, bytes) and self.hooks.blocked()
        if not self.out and max(due, self.free_at) <= now and not waits:
            self.deliver(item, spacing)
            return
        if isinstance(item, bytes):
            self.held += len(item)
        self.out.append((due, item, spacing))
        if self.idle():
            self.send()

    def deliver(self, item: Any, spacing: float = 0.0) -> None:
        if spacing:
            self.free_at = self.hooks.now() + spacing
        if item is None:
            self.next.finish()
        elif isinstance(item, bytes):
            self.next.write(item)
        elif isinstance(item, HandOn):
            self.pass_on([item.asked])
        else:
            item()

    def send(self) -> None:
        self.timer = None
        while self.out and not self.detached:
            due, item, spacing = self.out[0]
            now = self.hooks.now()
            ready = max(due, self.free_at)
            if ready > now:
                self.arm(ready - now, self.send)
                return
            if isinstance(item, bytes) and self.stall():
                return
            self.out.popleft()
            if isinstance(item, bytes):
                self.held -= len(item)
                self.deliver(item, spacing)
                self.hooks.moved()
            else:
                self.deliver(item, spacing)

    # -- leaving

    def pending(self) -> list[bytes]:
        """The bytes framed and not yet acted on, and those the framer holds, as they came."""
        chunks = []
        for _, value in self.events:
            if isinstance(value, Head):
                chunks.append(value.raw)
            elif isinstance(value, bytes):
                chunks.append(value)
        if not self.raw:
            chunks.append(bytes(self.framer.buffer))
        return [chunk for chunk in chunks if chunk]

    def detach(self) -> tuple[list[bytes], bool]:
        self.give_up()
        self.detached = True
        self.disarm()
        chunks = [item for _, item, _ in self.out if isinstance(item, bytes)]
        finishing = any(item is None for _, item, _ in self.out)
        chunks += self.pending()  # (a message begun: its bytes go on as they are)
        self.orphans = [item.asked for _, item, _ in self.out if isinstance(item, HandOn)] + list(self.inbox)
        self.out.clear()
        self.events.clear()
        self.inbox.clear()
        self.held = 0
        return chunks, finishing
