"""A page on the lab's event stream, and what it may leave unread.

A Server-Sent Events stream is written to as the run goes, whatever the page reads. A
page that stops reading (a tab in the background, a stalled laptop) would have the lab
buffer the whole run for it; so each page is its request's streaming producer: when
the connection's buffer is full twisted.web pauses it, and past :data:`MAX_BEHIND`
bytes written while paused the page is dropped (its connection aborted). A reload
gets what the run has kept, so a dropped page loses nothing it can't have again. That
replay, written at once when the page opens, is not counted: it is bounded already (the
run keeps at most its events' bound), and counting it would drop every reload of a long run.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

#: Bytes a page may fall behind, past what its connection's buffer holds, before it is dropped.
MAX_BEHIND = 4 << 20


@implementer(IPushProducer)
class Page:
    """One open event stream (a twisted.web request), written to only through here."""

    def __init__(self, request: Any):
        self.request = request
        self.paused = False
        self.behind = 0
        self.gone = False
        request.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused, self.behind = False, 0

    def stopProducing(self) -> None:
        self.gone = True

    def write(self, data: bytes, replay: bool = False) -> None:
        if self.gone:
            return
        if self.paused and not replay:
            self.behind += len(data)
            if self.behind > MAX_BEHIND:
                self.drop()
                return
        try:
            self.request.write(data)
        except RuntimeError:  # (its request had finished: the page is gone)
            self.gone = True

    def finish(self) -> None:
        """The lab is ending: the stream ends as it should, where the page is still there."""
        if self.gone:
            return
        self.gone = True
        try:
            self.request.unregisterProducer()
            self.request.finish()
        except (RuntimeError, AttributeError):  # (lost meanwhile: nothing to finish)
            pass

    def drop(self) -> None:
        """Too far behind: its connection is aborted (its request's notifyFinish then fires)."""
        self.gone = True
        transport = self.request.transport
        if transport is not None:
            abort = getattr(transport, "abortConnection", None) or transport.loseConnection
            abort()
