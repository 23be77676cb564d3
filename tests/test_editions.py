"""The two editions of every Twisted server, and the fast one's start-up check and fallback.

The plain edition uses Twisted's own port (a SharedPort, which only makes its
socket); the fast one its own port classes, which lean on names Twisted and CPython
do not promise to keep. Where the check finds one missing, the server runs the
plain edition and says so in one line. The other server tests run against both
editions (their ``Plain`` twins).
"""

from __future__ import annotations

import signal
import socket
import sys
from unittest import mock

from twisted.internet import defer, reactor, tcp
from twisted.logger import capturedLogs, formatEvent

from poetrynow.address import Address
from poetrynow.clients.get_poetry import get_poetry
from poetrynow.poems import load_poem
from poetrynow.servers import deploy
from poetrynow.servers.common import fastpath
from poetrynow.servers.common.listen import Where
from poetrynow.servers.common.ports import SharedPort
from poetrynow.servers.fast.onewrite import OneWritePort
from poetrynow.servers.slow.fast import SlowPort
from tests.support import Child
from tests.time_limit import SynchronousTestCase, TestCase

HERE = Where(0, "127.0.0.1")
FALLBACK = "Serving with the plain edition: the fast one cannot run here"


def hidden(name: str = "renamed_in_a_later_twisted"):
    """The check as it would run on a Twisted whose tcp.Port lacks ``name``."""
    fastpath.missing.cache_clear()
    patcher = mock.patch.object(fastpath, "PORT_NAMES", (*fastpath.PORT_NAMES, name))
    return patcher


class EditionTests(TestCase):
    def setUp(self):
        fastpath.missing.cache_clear()
        self.addCleanup(fastpath.missing.cache_clear)

    def start(self, build, *args, **kwargs):
        tree = build(*args, where=HERE, reactor=reactor, log_clients=False, **kwargs)
        tree.startService()
        self.addCleanup(tree.stopService)
        return tree

    def builds(self, upstream: int):
        return [
            (deploy.fast_poetry, ("kettle",), OneWritePort),
            (deploy.slow_poetry, ("kettle", 300, 0.001), SlowPort),
            (deploy.poetry_proxy, (Address("127.0.0.1", upstream),), OneWritePort),
        ]

    @defer.inlineCallbacks
    def test_each_server_runs_the_edition_asked_for(self):
        upstream = self.start(deploy.fast_poetry, "kettle", plain=True).listener.port
        for build, args, fast_class in self.builds(upstream):
            for plain in (False, True):
                tree = self.start(build, *args, plain=plain)
                expected = SharedPort if plain else fast_class
                self.assertIs(type(tree.listener.listening), expected, (build.__name__, plain))
                poem = yield get_poetry("127.0.0.1", tree.listener.port, reactor, timeout=30)
                self.assertEqual(poem, load_poem("kettle").data)

    @defer.inlineCallbacks
    def test_a_missing_internal_falls_back_to_the_plain_edition_with_one_line(self):
        upstream = self.start(deploy.fast_poetry, "kettle", plain=True).listener.port
        for build, args, _ in self.builds(upstream):
            with hidden(), capturedLogs() as events:
                tree = self.start(build, *args)
            self.assertIs(type(tree.listener.listening), SharedPort, build.__name__)
            lines = [formatEvent(event) for event in events if FALLBACK in formatEvent(event)]
            self.assertEqual(
                lines, [f"{FALLBACK} (twisted.internet.tcp.Port has no renamed_in_a_later_twisted)."]
            )
            poem = yield get_poetry("127.0.0.1", tree.listener.port, reactor, timeout=30)
            self.assertEqual(poem, load_poem("kettle").data)
            fastpath.missing.cache_clear()


class CheckTests(SynchronousTestCase):
    def setUp(self):
        fastpath.missing.cache_clear()
        self.addCleanup(fastpath.missing.cache_clear)

    def test_the_check_passes_on_this_twisted_and_python(self):
        self.assertIsNone(fastpath.missing())

    def test_a_changed_transport_constructor_is_caught(self):
        class Renamed(tcp.Server):
            def __init__(self, sock, protocol, client, server, sessionno, reactor, more):
                raise AssertionError("never built by the check")

        class Grown(tcp.Server):  # a later Twisted may add an optional parameter: still fine
            def __init__(self, sock, protocol, client, server, sessionno, reactor, more=None):
                raise AssertionError("never built by the check")

        with mock.patch.object(tcp.Port, "transport", Renamed):
            fastpath.missing.cache_clear()
            why = fastpath.missing() or ""
        self.assertIn("transport takes (sock, protocol, client, server, sessionno, reactor, more)", why)
        with mock.patch.object(tcp.Port, "transport", Grown):
            fastpath.missing.cache_clear()
            self.assertIsNone(fastpath.missing())

    def test_a_socket_without_its_bare_accept_is_caught(self):
        class WithoutBareAccept:  # a CPython whose socket class no longer has _accept
            pass

        self.assertEqual(fastpath.bare_accept_problem(WithoutBareAccept), "socket.socket has no _accept")
        self.assertIsNone(fastpath.bare_accept_problem())


class CommandFallbackTests(SynchronousTestCase):
    """The real command, on a Python whose fast path is hidden: its listening line first, then the note."""

    def test_fastpoetry_serves_plainly_and_says_so_after_its_listening_line(self):
        code = (
            "import sys; from unittest import mock; from poetrynow.servers.common import fastpath; "
            "mock.patch.object(fastpath, 'PORT_NAMES', fastpath.PORT_NAMES + ('gone',)).start(); "
            "from poetrynow.cli.fastpoetry import main; sys.exit(main(['kettle']))"
        )
        server = Child([sys.executable, "-c", code])
        self.addCleanup(server.stop, signal.SIGKILL)
        first = server.out.next_line()
        self.assertRegex(first, r"^Serving kettle on port \d+\.\n$")
        port = int(first.rsplit(" ", 1)[1].rstrip(".\n"))
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            got = b""
            while data := client.recv(65536):
                got += data
        self.assertEqual(got, load_poem("kettle").data)
        self.assertEqual(server.out.next_line(), f"{FALLBACK} (twisted.internet.tcp.Port has no gone).\n")
        server.stop()
        rest = server.stdout  # the lines after those taken above, none lost
        self.assertIn("sending 636 bytes of poetry to 127.0.0.1:", rest)
