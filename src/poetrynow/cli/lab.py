"""``poetrynow lab [--port N] [--no-browser]``: the loop, live, in a browser page.

The lab's address, with its token, is printed first and flushed, as every server's
listening line is (a script, or a test, started with ``--port 0`` reads it); then the
page opens in the user's browser unless ``--no-browser``. Ctrl-C and SIGTERM end the
lab as they end a server (:func:`poetrynow.cli.serving.serve`), its run and every
child of it first.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.application import service
from twisted.internet import defer

from poetrynow.lab.children import STOP_WITHIN
from poetrynow.lab.doorway import Doorway
from poetrynow.lab.guard import new_token
from poetrynow.lab.reaping import Reaping
from poetrynow.lab.site import Lab, LabSite
from poetrynow.servers.common.listen import Where
from poetrynow.servers.common.startup import ListeningService

PROG = "poetrynow lab"
STOP_LATE = f"its run's children had not all ended {STOP_WITHIN + 5:g} s after it stopped"
NO_BROWSER = "No browser could be opened here: open the address above in one"
OPENED = "Opening it in your browser (if it shows no page, open the address above)"


class LabListener(ListeningService):
    """Listens on 127.0.0.1; its line is the page's address, token and all."""

    def __init__(self, lab: Lab, where: Where, reactor: Any):
        super().__init__(LabSite(lab, reactor=reactor), where, "Lab", reactor)
        self.lab = lab

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.lab.token}"

    def listening_line(self) -> str:
        return f"Lab on {self.url()}"

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.lab.port = self.port


class LabService(service.Service):
    """The lab itself: its heartbeat, its reaping of children, and its run, ended with the lab."""

    def __init__(self, lab: Lab, open_page: Any):
        self.lab, self.open_page = lab, open_page
        self.reaping = Reaping(lab.reactor, self.transports)

    def transports(self) -> list[Any]:
        run = self.lab.run
        children = run.children if run is not None else []
        return [child.transport for child in children if child.transport is not None]

    def startService(self) -> None:
        super().startService()
        self.reaping.start()
        self.lab.start()
        if self.open_page is not None:
            self.lab.reactor.callWhenRunning(self.open_page)

    def stopService(self) -> Any:
        super().stopService()
        stopping = defer.maybeDeferred(self.lab.stop)
        # Each child is killed STOP_WITHIN s after its SIGTERM; past that, the lab ends all the same.
        stopping.addTimeout(STOP_WITHIN + 5, self.lab.reactor)
        stopping.addErrback(lambda failure: print(f"{PROG}: {STOP_LATE}", file=sys.stderr, flush=True))
        return ended_then(stopping, self.reaping.stop)


class LabTree(service.MultiService):
    """What :func:`~poetrynow.cli.serving.serve` runs: the listener first (the page's address must be
    known before a browser is sent there), then the lab."""

    def __init__(self, port: int, browser: bool, reactor: Any):
        super().__init__()
        self.lab = Lab(reactor, new_token())
        self.listener = LabListener(self.lab, Where(port, "127.0.0.1"), reactor)
        self.listener.setServiceParent(self)
        self.doorway = Doorway()
        LabService(self.lab, self.browse if browser else None).setServiceParent(self)

    def browse(self) -> None:
        """Open the page in the user's browser, in a thread: a browser may take its time to start.
        The browser is given a file of the user's own that sends it on (:mod:`poetrynow.lab.doorway`),
        not the address: a command line, the token in it, is there for every user to read."""
        from twisted.internet.threads import deferToThread

        d = deferToThread(self.doorway.open, self.listener.url())
        d.addCallback(lambda opened: print(OPENED if opened else NO_BROWSER, flush=True))
        d.addErrback(lambda failure: print(f"{NO_BROWSER} ({failure.getErrorMessage()})", flush=True))

    def stopService(self) -> Any:
        return ended_then(defer.maybeDeferred(super().stopService), self.doorway.close)


def ended_then(d: defer.Deferred[Any], then: Any) -> defer.Deferred[Any]:
    """``d``, and ``then()`` once it has fired, whatever it fired with."""

    def after(result: Any) -> Any:
        then()
        return result

    return d.addBoth(after)


def run_lab(port: int, browser: bool) -> int:
    from twisted.internet import reactor

    from poetrynow.cli.serving import serve

    return serve(PROG, LabTree(port, browser, reactor), stopped_what="its run and its servers are stopped")
