"""Servers out of file descriptors: each client whole or failed, one line, recovery.

The notice rests on accept()'s errno, seen by the servers' own ports, so the tests
in-process make accept fail with EMFILE and reword every line of Twisted's.
"""

from __future__ import annotations

import errno
import io
import json
import os
import resource
import socket
import threading

from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger, LogLevel, globalLogPublisher

from poetrynow.cli.serving import plain_observer
from poetrynow.poems import load_poem
from poetrynow.servers.common import ports
from tests.support import Child, Editions, ServersInAThread, command, plain_twin, run
from tests.time_limit import SynchronousTestCase

LIMIT = 256
CLIENTS = 600


def low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


class FdExhaustionTests(Editions, SynchronousTestCase):
    def test_no_empty_poem_passes_and_the_server_says_so_once(self):
        server = Child(
            [
                *command("slowpoetry"),
                *self.edition_args(
                    "slowpoetry", "kettle", "--concurrent", "--quiet", "--num-bytes", "200", "--delay", "0.2"
                ),
            ],
            preexec_fn=low_fd_limit,
        )
        try:
            port = server.out.next_line().rsplit(" ", 1)[1].rstrip(".\n")
            result = run("get-poetry", "--engine", "select", "--json", "--timeout", "10", *[port] * CLIENTS)
            records = [json.loads(line) for line in result.stdout.splitlines()]
            finished = [r for r in records if r["event"] == "finished"]
            failed = [r for r in records if r["event"] == "failed"]
            self.assertEqual(len(finished) + len(failed), CLIENTS)
            self.assertTrue(failed)  # the limit bit
            self.assertTrue(all(r["bytes"] == len(load_poem("kettle").data) for r in finished))
            self.assertEqual({r["reason"] for r in failed}, {"the server closed without sending a poem"})
            self.assertEqual(result.returncode, 1)
            after = run("get-poetry", "--engine", "select", port)  # it recovers
            self.assertEqual(after.returncode, 0, after.stderr)
        finally:
            server.stop()
        out = server.stdout
        self.assertEqual(out.count("Out of file descriptors"), 1, out)
        self.assertIn(f"the open-files limit is {LIMIT}", out)


#: Seconds a server in a thread may take to notice.
WITHIN = 30.0


def accept_short_once():
    """A ``_accept`` for the ports' sockets that fails once with EMFILE, then accepts as always."""
    failed: list[bool] = []

    def _accept(sock):
        if not failed:
            failed.append(True)
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return socket.socket._accept(sock)  # type: ignore[attr-defined]

    return _accept


def reworded(event: dict) -> dict:
    """Any line but our notice as a later Twisted might log it: other words, and louder."""
    if "out_of_fds" in event:
        return event
    return dict(event, log_format="Something else entirely happened.", log_level=LogLevel.warn)


class OutOfFdsNoticeTests(Editions, SynchronousTestCase):
    """Each server's listening port, in each edition, says it ran out, in its own words."""

    def notice_when_accept_fails(self, start) -> list[str]:
        """Start a server on a private reactor, make its accept fail once, connect: the
        terminal's lines (Twisted's reworded), once the notice is out."""
        self.patch(ports, "SHORTAGE", ports.Shortage())
        self.patch(ports.NoticingSocket, "_accept", accept_short_once())
        servers = ServersInAThread(self, plain=self.plain)
        port = start(servers)
        events: list[dict] = []
        arrived = threading.Condition()

        def gather(event):
            with arrived:
                events.append(event)
                arrived.notify_all()

        globalLogPublisher.addObserver(gather)
        self.addCleanup(globalLogPublisher.removeObserver, gather)
        with socket.create_connection(("127.0.0.1", port), timeout=WITHIN), arrived:
            noticed = arrived.wait_for(lambda: any("out_of_fds" in e for e in events), WITHIN)
        self.assertTrue(noticed, events)
        # Twisted's own lines of that accept come at the end of it: a call through the
        # server's reactor returns after them.
        blockingCallFromThread(servers.reactor, lambda: None)
        self.assertEqual([e["out_of_fds"] for e in events if "out_of_fds" in e], [errno.EMFILE])
        terminal = io.StringIO()
        observe = plain_observer(LogLevel.info, out=terminal)
        for event in list(events):
            observe(reworded(event))
        return terminal.getvalue().splitlines()

    def assert_one_notice(self, lines: list[str]) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertEqual(
            lines,
            [
                f"Out of file descriptors (the open-files limit is {soft}): new connections are closed "
                "at once until some are free."
            ],
        )

    def test_the_slow_server(self):
        lines = self.notice_when_accept_fails(lambda servers: servers.slow("kettle", 100, 0.01))
        self.assert_one_notice(lines)

    def test_the_fast_server(self):
        self.assert_one_notice(self.notice_when_accept_fails(lambda servers: servers.fast("kettle")))


PlainFdExhaustionTests = plain_twin(FdExhaustionTests)
PlainOutOfFdsNoticeTests = plain_twin(OutOfFdsNoticeTests)


class ShortageTests(SynchronousTestCase):
    def setUp(self):
        self.now = 100.0
        self.said: list[dict] = []
        self.shortage = ports.Shortage(every=10.0, clock=lambda: self.now)
        self.patch(ports, "log", Logger(observer=self.said.append))

    def test_once_a_spell_and_only_for_want_of_descriptors(self):
        self.shortage.noticed(OSError(errno.ECONNABORTED, "aborted"))
        self.assertEqual(self.said, [])
        for when, code in ((100.0, errno.EMFILE), (109.0, errno.EMFILE), (110.0, errno.ENFILE)):
            self.now = when
            self.shortage.noticed(OSError(code, os.strerror(code)))
        self.assertEqual([event["out_of_fds"] for event in self.said], [errno.EMFILE, errno.ENFILE])
        self.assertIn("the system's table is full", self.said[1]["notice"])
