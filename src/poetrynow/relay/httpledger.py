"""What a connection's HTTP toxics share: the requests its client sent, in order, and their answers.

Each direction frames its own messages, but a response cannot be framed alone (a
response to HEAD has no body; a 2xx to CONNECT, or a 101, ends HTTP on the whole
connection), and an answer the relay gives itself (``http_status``) must reach the
client after the responses to the requests before it, even when they are pipelined.
So once an HTTP toxic is on a connection, the relay puts a watcher at the head of
each direction, before every toxic: :class:`UpTap` writes each request in the
:class:`Ledger`; :class:`DownTap` reads each response against the oldest request
not yet answered, and lets each of the relay's own answers out in its turn,
between whole responses. An Upgrade or CONNECT request holds the request stream
until its answer says whether HTTP goes on (:meth:`Ledger.resolve`).

Bounded: at most :data:`MAX_ASKED` requests may be waiting for their answers
(sent upstream, or answered by the relay and not yet written to the client); past
that the up watcher holds the next request back and its direction's reader is
paused, so a client that pipelines requests and reads no answer costs at most that
many answers of the relay's (each at most 128 KiB).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

from poetrynow.relay.httpframe import Head
from poetrynow.relay.httpstage import Asked, HandOn, HttpStage
from poetrynow.relay.stages import Hooks

#: The requests of one connection that may wait for their answers at once.
MAX_ASKED = 32


class Ledger:
    """One connection's requests still to be answered (see the module)."""

    def __init__(
        self, resolve: Callable[[Asked | None, int], None], over: Callable[[], bool], idle: Callable[[], None]
    ):
        self.asked: deque[Asked] = deque()
        self.on_resolve = resolve  # the request side's framers read on, or go raw
        self.over = over  # whether the responses' direction holds more than its limit
        self.idle = idle  # a response has ended: the watchers may leave, if they were to
        self.up: UpTap | None = None
        self.down: DownTap | None = None
        # A watcher no longer frames (not HTTP, a tunnel, a new protocol): no request is matched to
        # a response from then on, none is held back, and the relay's answers go out as they come.
        self.off = False

    def ask(self, head: Head) -> Asked:
        asked = Asked(head.method, head.switching)
        if not self.off:
            self.asked.append(asked)
        return asked

    def stop(self) -> None:
        if not self.off:
            self.off = True
            kept = [asked for asked in self.asked if asked.answer is not None]
            self.asked.clear()
            self.asked.extend(kept)
            self.on_resolve(None, 101)  # (a request framer that waits for an answer none will match: raw)
            if self.down is not None:
                self.down.pump()
            self.room()

    def full(self) -> bool:
        """Whether the next request must wait: 32 wait for answers already, or the responses'
        direction holds more than its limit (a client that reads none of the relay's answers,
        behind a toxic that holds them)."""
        out = self.down.answers_out if self.down is not None else 0
        waiting = out if self.off else len(self.asked) + out
        return waiting >= MAX_ASKED or self.over()

    def answered(self, asked: Asked | None, data: bytes, code: int) -> None:
        """The relay answers ``asked`` itself (None: a request no watcher saw, answered last)."""
        if asked is None:
            asked = Asked(b"", False, swallowed=True)
        if asked not in self.asked:
            self.asked.append(asked)  # (a request the ledger did not keep: answered in its turn, or now)
        asked.answer, asked.code = data, code
        if self.down is not None:
            self.down.pump()

    def done(self, asked: Asked) -> None:
        """``asked`` has its whole answer: the oldest, nearly always."""
        if self.asked and self.asked[0] is asked:
            self.asked.popleft()
        elif asked in self.asked:
            self.asked.remove(asked)
        self.room()

    def room(self) -> None:
        if self.up is not None:
            self.up.go_on()

    def resolve(self, asked: Asked | None, status: int) -> None:
        """A final response of ``status`` to ``asked`` (None: to a request not matched, which a
        request framer that waits may take for its answer)."""
        if asked is None or asked.switching:
            self.on_resolve(asked, status)


class Tap(HttpStage):
    """What the two watchers share: a ledger, and no toxicity (they meet no message)."""

    def __init__(self, hooks: Hooks, ledger: Ledger, stream: str):
        self.ledger = ledger
        super().__init__(hooks, {"stream": stream, "toxicity": 0.0}, random.Random(0))

    def meets(self) -> bool:
        return False

    def gone_raw(self) -> None:
        self.ledger.stop()

    def behind(self) -> None:
        """Joined while a request may be under way: this connection is not read as HTTP at all."""
        self.raw = True
        self.ledger.stop()  # (not gone_raw: the toxic that called for it is still to join)


class UpTap(Tap):
    """The head of the request direction: writes each request in the ledger, hands it on with its
    head, and holds the next one back while the ledger is full."""

    fin_held = False

    def __init__(self, hooks: Hooks, ledger: Ledger):
        super().__init__(hooks, ledger, "upstream")
        ledger.up = self

    def ready(self, head: Head) -> bool:
        return not self.ledger.full()

    def asked_for(self, head: Head) -> Asked | None:
        return self.ledger.ask(head)

    def throttled(self) -> bool:
        return bool(self.events)

    def go_on(self) -> None:
        """The ledger has room again: the request held back goes on, and the reader may read."""
        if not self.events or self.detached:
            return
        self.run([])
        if self.fin_held and not self.events:
            self.fin_held = False
            super().finish()
        self.hooks.moved()

    def finish(self) -> None:
        if self.events:  # (a request held back: the FIN waits behind it)
            self.fin_held = True
            return
        super().finish()

    def detach(self) -> tuple[list[bytes], bool]:
        chunks, finishing = super().detach()
        return chunks, finishing or self.fin_held  # (a FIN held back goes on after what it held)


class DownTap(Tap):
    """The head of the response direction: reads each response against the oldest request still
    to be answered, and lets the relay's own answers out in their turn."""

    within = False  # a final response under way
    answers_out = 0  # the relay's answers emitted and not yet written on

    def __init__(self, hooks: Hooks, ledger: Ledger):
        super().__init__(hooks, ledger, "downstream")
        ledger.down = self

    def gone_raw(self) -> None:
        super().gone_raw()
        self.pump()  # (the answers waiting go now: no response is under way that it can see)
        self.ledger.idle()

    def asked_for(self, head: Head) -> Asked | None:
        self.pump()  # (answers to requests older than this response's go first)
        asked = self.ledger.asked
        matched = asked[0] if asked and not asked[0].swallowed else None  # (else one nobody asked for)
        self.within = True
        if matched is not None or self.ledger.off:
            self.ledger.resolve(matched, head.status)
        return matched

    def finish(self) -> None:
        self.ledger.stop()  # (the upstream has ended: no response will come to what waits)
        super().finish()
        if not self.detached:  # (its FIN may have closed the connection)
            self.ledger.idle()  # (the watchers may have been waiting for this to leave)

    def end(self) -> None:
        if self.within and self.final:
            self.within = False
            if self.asked is not None:
                self.ledger.done(self.asked)
            self.pump()
            self.ledger.idle()

    def pump(self) -> None:
        """The relay's answers at the front of the ledger go out, unless a response is under way."""
        asked = self.ledger.asked
        if self.within and not self.raw:  # (never into a response under way)
            return
        while not self.detached and asked and asked[0].answer is not None:
            answer = asked.popleft()
            self.answers_out += 1
            self.emit(HandOn(answer))
            self.emit(answer.answer)
            self.emit(self.written)
            self.ledger.resolve(answer, answer.code)
        self.ledger.room()  # (once: the requests held back may go on, if any answer went)

    def written(self) -> None:
        self.answers_out -= 1
        self.ledger.room()
