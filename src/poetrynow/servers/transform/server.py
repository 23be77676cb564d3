"""The transform server: one netstring ``name.poem`` in, one netstring out, close.

Anything else (no ``.``, an unknown transform, a transform that raises, a
malformed or over-long netstring, no request within the timeout, workers that
hold as many transforms as they may) closes the connection without an answer and
logs one line; the server goes on serving.

The work may cost S seconds, and run in the reactor's thread, a thread pool or a
process pool (Part 20's warning, :mod:`poetrynow.servers.transform.workers`): the answer goes
out when the work's Deferred fires, and a work that fails costs that one request.
The protocol holds that Deferred: a client that goes away cancels its work, and
the timeout bounds the wait for it too (:meth:`TransformService.longest_work`).
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from poetrynow.interfaces import ITransformService
from poetrynow.netstring import DEFAULT_MAX_LENGTH, NetstringDecoder, NetstringError, encode
from poetrynow.servers.common.ending import Answering
from poetrynow.servers.common.guard import costs_one_connection
from poetrynow.servers.common.listen import peer_name
from poetrynow.servers.common.startup import StartError, cannot_start
from poetrynow.servers.transform.costs import NO_COST, Cost, Done, Job, Refused
from poetrynow.servers.transform.workers import InLoop
from poetrynow.servers.transform.worklog import WorkLog
from poetrynow.transforms import TRANSFORMS, TransformError


@implementer(ITransformService)
class TransformService(service.Service):
    """Holds the transforms, the cost of each, and the workers that do them.

    The workers (a pool of threads or processes) and the work log start and stop
    with the service; by default the work is free and runs in the reactor's thread.
    """

    def __init__(
        self,
        registry=None,
        max_length: int = DEFAULT_MAX_LENGTH,
        cost: Cost = NO_COST,
        workers=None,
        work_log: str | None = None,
    ):
        self.registry = dict(TRANSFORMS if registry is None else registry)
        self.max_length = max_length
        self.cost = cost
        self.workers = InLoop() if workers is None else workers
        self.work_log = WorkLog(work_log) if work_log else None

    def startService(self):
        if self.work_log is not None:
            self.work_log.open()
        try:
            self.workers.start()
        except Exception as problem:
            if self.work_log is not None:
                self.work_log.close()
            why = f"cannot start the transform's {self.workers.place} workers: {problem}"
            raise cannot_start(StartError(why)) from problem
        service.Service.startService(self)

    def stopService(self):
        service.Service.stopService(self)
        self.workers.stop()
        if self.work_log is not None:
            self.work_log.close()

    def longest_work(self) -> float:
        """The longest a request's work may take and still be on its way, not stuck: its cost,
        once for each transform the workers may hold (``--queue``), for they may all take
        turns (CPU work in threads shares one GIL). The protocol adds its ``--timeout``."""
        return self.cost.seconds * getattr(self.workers, "queue", 1)

    def transform(self, name: str, poem: bytes) -> Deferred[bytes]:
        """The transformed poem, once a worker has spent the cost and transformed it.

        An unknown name is refused at once: there is no work to pay for.
        """
        function = self.registry.get(name)
        if function is None:
            return fail(TransformError(f"unknown transform {name!r}"))
        return self.workers.run(Job(name, function, poem, self.cost)).addCallback(self._done, name, len(poem))

    def _done(self, done: Done, name: str, nbytes: int) -> bytes:
        if self.work_log is not None:
            self.work_log.write(done, name, nbytes)
        return done.poem


class TransformProtocol(Answering, TimeoutMixin):
    """One request, one answer. A client may half-close once its request is sent: the
    answer still comes (:mod:`poetrynow.servers.common.ending`)."""

    log = Logger()
    heard = False  # some of a request came
    gone = False  # the connection is lost
    working: Deferred[bytes] | None = None  # the request's work, until it fires
    work_within: float | None = None  # seconds the work may take, once asked for
    called_off = False  # this protocol cancelled the work: the client went, or the time ran out

    @costs_one_connection
    def connectionMade(self):
        self.decoder = NetstringDecoder(self.factory.service.max_length)
        self.answered = False
        self.peer = peer_name(self.transport.getPeer())
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign]  # the factory's clock
        self.setTimeout(self.factory.timeout)

    @costs_one_connection
    def dataReceived(self, data: bytes):
        if self.answered:
            Answering.dataReceived(self, data)  # dropped, up to a limit
            return
        self.heard = True
        try:
            requests = self.decoder.feed(data, most=1)  # one request; what follows is dropped
        except NetstringError as problem:
            self._refuse(str(problem))
            return
        if requests:
            self.answered = True
            self._answer(requests[0])

    def _answer(self, request: bytes):
        name, dot, poem = request.partition(b".")
        if not dot:
            self._refuse("request has no '.' between the transform's name and the poem")
            return
        transform = name.decode("utf-8", errors="replace")
        service = self.factory.service
        if self.factory.timeout is not None:  # from here on the timer is the work's
            self.work_within = self.factory.timeout + service.longest_work()
        self.setTimeout(self.work_within)
        self.working = service.transform(transform, poem)
        self.working.addCallbacks(self._transformed, self._failed, callbackArgs=(transform, len(poem)))

    @costs_one_connection
    def _transformed(self, result: bytes, name: str, nbytes: int) -> None:
        self.working = None
        self.setTimeout(None)
        if self.gone:  # the client went away while the work was done: nobody to answer
            return
        if self.factory.log_clients:
            self.log.info("{name} of {nbytes} bytes for {peer}", name=name, nbytes=nbytes, peer=self.peer)
        self.transport.write(encode(result))
        self.finish()

    @costs_one_connection
    def _failed(self, failure: Failure) -> None:
        """The work failed: a refusal of this one request, in one line (a bug's traceback under it).

        Called off by this protocol (the client went, or the time ran out, which
        has said so), there is nothing more to say.
        """
        self.working = None
        if self.called_off and failure.check(CancelledError):
            return
        if failure.check(TransformError, Refused):
            self._refuse(failure.getErrorMessage())
            return
        self.log.failure("Refused {peer}: the work failed", failure, peer=self.peer)
        self._end()

    def _refuse(self, why: str):
        self.log.warn("Refused {peer}: {why}", peer=self.peer, why=why)
        self._end()

    def _end(self) -> None:
        """No answer: close (after the client's FIN, if it spoke: :mod:`~poetrynow.servers.common.ending`)."""
        self.answered = True
        self.setTimeout(None)
        if not self.gone:
            self.finish()

    def client_finished(self) -> None:
        """The client's FIN: the answer goes on, but a request not yet whole never will be."""
        if self.answered:
            return
        if self.heard:
            self._refuse("the client closed its side before its request was whole")
        else:
            self.answered = True
            self.setTimeout(None)
            self.finish()  # it said nothing at all (a port check): nothing to log

    def timeoutConnection(self):
        working, self.working = self.working, None
        if working is None:
            self._refuse(f"no request within {self.factory.timeout:g} s")
            return
        self._refuse(f"no answer from the work within {self.work_within:g} s")
        self.called_off = True
        working.cancel()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The client is gone: its work is cancelled, so that it costs no worker (see
        :mod:`poetrynow.servers.transform.pool`), and no timer is left."""
        self.gone = True
        working, self.working = self.working, None
        if working is not None:
            self.called_off = True
            working.cancel()
        Answering.connectionLost(self, reason)
        self.setTimeout(None)


class TransformFactory(Factory):
    protocol = TransformProtocol
    noisy = False

    def __init__(
        self, service: TransformService, timeout: float | None = 60.0, clock=None, log_clients: bool = True
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.service = service
        # Off with --quiet: refusals are still logged, answers are not.
        self.log_clients = log_clients
        self.timeout = timeout
        self.clock = clock
