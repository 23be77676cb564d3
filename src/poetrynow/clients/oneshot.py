"""One request, one Deferred, and a cancel that really cancels (Part 19).

Both Twisted clients here ask one server one thing: the poetry client its poem,
the transform client a poem transformed. Each request gets a factory of its own,
a :class:`OneShotClientFactory`, whose Deferred fires once, with the answer or
with why there is none.

Part 19's lesson is in :meth:`~OneShotClientFactory.cancel`: a Deferred's
canceller must really stop the work, here by aborting the connection (or the
attempt to make one). It forgets the Deferred first, so that the loss of the
connection it is about to cause cannot fire the Deferred a second time.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure


class OneShotClientFactory(Factory):
    """A client factory whose single Deferred fires once, and can be cancelled for real.

    It connects through an endpoint (:meth:`connect`), or is handed a socket
    already dialled (:func:`poetrynow.clients.adopt.adopt`). Its protocol ends
    the request with :meth:`succeeded` or :meth:`failed`; only the first of them,
    before any cancel, reaches the caller.
    """

    noisy = False

    def __init__(self):
        #: What the caller is given; ``deferred`` is forgotten once it has fired or been cancelled.
        self.result: defer.Deferred = defer.Deferred(lambda d: self.cancel())
        self.deferred: defer.Deferred | None = self.result
        #: The connection being made, for :meth:`cancel` to stop: the endpoint's Deferred, or a wait.
        self.connecting: defer.Deferred | None = None
        self.protocol_instance = None

    def connect(self, endpoint) -> defer.Deferred:
        """Connect through ``endpoint``; the Deferred the caller gets."""
        self.connecting = endpoint.connect(self)
        self.connecting.addErrback(self.failed)
        return self.result

    def buildProtocol(self, addr):
        self.protocol_instance = super().buildProtocol(addr)
        return self.protocol_instance

    def cancel(self):
        self.deferred = None
        if self.protocol_instance is not None and self.protocol_instance.transport:
            self.protocol_instance.transport.abortConnection()
        elif self.connecting is not None:
            self.connecting.cancel()

    def succeeded(self, answer: bytes) -> None:
        """Fire the caller's Deferred with ``answer``, unless it has fired or been cancelled."""
        deferred = self._still_waiting()
        if deferred is not None:
            deferred.callback(answer)

    def failed(self, reason: Failure | Exception) -> None:
        """Fail the caller's Deferred, unless it has fired or been cancelled."""
        deferred = self._still_waiting()
        if deferred is not None:
            deferred.errback(reason)

    def _still_waiting(self) -> defer.Deferred | None:
        """The caller's Deferred if nothing has fired it yet, forgotten: it fires once."""
        deferred, self.deferred = self.deferred, None
        return deferred
