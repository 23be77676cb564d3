"""``poetrynow lab [--port N] [--no-browser]``: the loop, live, in a browser page.

The lab's address, with its token, is printed first and flushed, as every server's
listening line is (a script, or a test, started with ``--port 0`` reads it); then the
page opens in the user's browser unless ``--no-browser``. Ctrl-C and SIGTERM end the
lab as they end a server (:func:`poetrynow.cli.serving.serve`), its run and every
child of it first.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service

from poetrynow.lab.guard import new_token
from poetrynow.lab.site import Lab, LabSite
from poetrynow.servers.common.listen import Where
from poetrynow.servers.common.startup import ListeningService

PROG = "poetrynow lab"


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
    """The lab itself: its heartbeat, and its run, ended with the lab (children and all)."""

    def __init__(self, lab: Lab, open_page: Any):
        self.lab, self.open_page = lab, open_page

    def startService(self) -> None:
        super().startService()
        self.watch_children()
        self.lab.start()
        if self.open_page is not None:
            self.lab.reactor.callWhenRunning(self.open_page)

    def stopService(self) -> Any:
        super().stopService()
        return self.lab.stop()

    def watch_children(self) -> None:
        """Reap the lab's children as they end. The commands run the reactor without its own
        signal handlers (:mod:`poetrynow.stopping` has SIGINT and SIGTERM), and so without the
        SIGCHLD one that tells a process protocol its child ended: this handler hands the reactor
        Twisted's public reaper, through its thread-safe way in, which also wakes it."""
        import signal

        from twisted.internet.process import reapAllProcesses

        call = self.lab.reactor.callFromThread
        signal.signal(signal.SIGCHLD, lambda signum, frame: call(reapAllProcesses))


class LabTree(service.MultiService):
    """What :func:`~poetrynow.cli.serving.serve` runs: the listener first (the page's address must be
    known before a browser is sent there), then the lab."""

    def __init__(self, port: int, browser: bool, reactor: Any):
        super().__init__()
        self.lab = Lab(reactor, new_token())
        self.listener = LabListener(self.lab, Where(port, "127.0.0.1"), reactor)
        self.listener.setServiceParent(self)
        LabService(self.lab, self.browse if browser else None).setServiceParent(self)

    def browse(self) -> None:
        """Open the page in the user's browser, in a thread: a browser may take its time to start."""
        import webbrowser

        from twisted.internet.threads import deferToThread

        deferToThread(webbrowser.open, self.listener.url()).addErrback(lambda _: None)


def run_lab(port: int, browser: bool) -> int:
    from twisted.internet import reactor

    from poetrynow.cli.serving import serve

    return serve(PROG, LabTree(port, browser, reactor), stopped_what="its run and its servers are stopped")
