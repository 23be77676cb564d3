"""The twisted engine's own hazards: a bug in its start-up, and what a run leaves open.

In-process, on a fresh reactor per run as the engine makes them; the servers are the
project's own on a private reactor in a thread (tests.support.ServersInAThread).
"""

from __future__ import annotations

import os

from poetrynow.address import Address
from poetrynow.clients import EngineOptions, reactors, run_engine, twisted_engine
from poetrynow.events import Finished
from tests.support import ServersInAThread
from tests.test_every_engine import get_poetry_main
from tests.time_limit import SynchronousTestCase

#: Seconds a run may take before the test's own timer stops its reactor: a regression
#: (a run that hangs) then fails in seconds instead of holding the suite.
BOUND = 10.0


class InjectedBug(Exception):
    """What the test makes the engine's start-up raise."""


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class StartUpBugTests(SynchronousTestCase):
    def setUp(self):
        self.servers = ServersInAThread(self)
        self.address = Address("127.0.0.1", self.servers.fast("caffe"))
        made = twisted_engine.new_reactor
        self.bounded: list = []

        def bounded_reactor():
            reactor = made()
            self.bounded.append(reactor.callLater(BOUND, reactors.stop_reactor, reactor))
            return reactor

        self.patch(twisted_engine, "new_reactor", bounded_reactor)

        def start_all(tasks):
            raise InjectedBug("an injected start-up bug")

        self.patch(twisted_engine, "start_all", start_all)

    def assert_not_bounded(self):
        """The run ended by itself: the test's timer never had to stop it."""
        self.assertTrue(self.bounded)
        self.assertTrue(all(timer.active() for timer in self.bounded))

    def test_the_run_raises_the_bug_once_its_reactor_has_stopped(self):
        with self.assertRaises(InjectedBug):
            run_engine("twisted", [self.address], lambda event: None)
        self.assert_not_bounded()

    def test_the_command_says_it_in_one_line_and_exits_one(self):
        status, _, err = get_poetry_main("--engine", "twisted", str(self.address.port))
        self.assertEqual(
            (status, err), (1, "get-poetry: error: the twisted engine failed: an injected start-up bug\n")
        )
        self.assert_not_bounded()


class DescriptorTests(SynchronousTestCase):
    def test_a_hundred_runs_hold_no_more_descriptors_than_one(self):
        servers = ServersInAThread(self)
        address = Address("127.0.0.1", servers.fast("caffe"))

        def one_run() -> None:
            events: list = []
            run_engine("twisted", [address], events.append, EngineOptions())
            self.assertEqual(len([e for e in events if isinstance(e, Finished)]), 1)

        one_run()
        after_one = descriptors()
        for _ in range(100):
            one_run()
        self.assertLessEqual(descriptors(), after_one)

    def test_the_poller_check_falls_back_when_the_private_name_is_not_there(self):
        class Elsewhere:  # a reactor whose poller is called something else, or is no epoll
            _poller = object()

        self.assertIsNone(reactors.private_poller(Elsewhere()))
        self.assertIsNone(reactors.private_poller(object()))
        reactor = twisted_engine.new_reactor()
        self.addCleanup(reactors.close_reactor, reactor)
        if hasattr(__import__("select"), "epoll"):
            self.assertIsNotNone(reactors.private_poller(reactor))


class ResetBeforeAdoptionTests(SynchronousTestCase):
    """A server that resets the connection between the engine's two looks at the socket."""

    def test_the_reset_is_reported_in_every_engines_words(self):
        import socket
        import struct
        import time

        from poetrynow.clients import adopt
        from poetrynow.clients.get_poetry import describe_failure
        from poetrynow.clients.oneshot import OneShotClientFactory
        from poetrynow.clients.reactors import close_reactor
        from tests.support import DEADLINE

        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        client = socket.create_connection(listener.getsockname())
        self.addCleanup(client.close)
        server, _ = listener.accept()
        server.sendall(b"half a poem")
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.close()  # a reset
        deadline = time.monotonic() + DEADLINE
        while adopt.is_connected(client) and time.monotonic() < deadline:
            time.sleep(0.01)  # the kernel has the reset
        # As on a loaded machine: the socket was connected when the engine looked.
        self.patch(adopt, "is_connected", lambda sock: True)
        reactor = twisted_engine.new_reactor()
        self.addCleanup(close_reactor, reactor)
        factory = OneShotClientFactory()
        result = adopt.adopt(factory, client, reactor, DEADLINE)
        failure = self.failureResultOf(result)
        self.assertEqual(describe_failure(failure.value), "Connection reset by peer")
