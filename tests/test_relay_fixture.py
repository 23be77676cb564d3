"""The helpers for test suites: ``relay()`` from a plain synchronous test, and pytest's
``toxic_relay`` fixture (the ``pytest11`` entry point), used here as a project's suite would."""

from __future__ import annotations

import contextlib
import errno
import tomllib
from pathlib import Path

import pytest

# The plugin's fixtures, for this module whether or not poetrynow is installed with its entry point.
from poetrynow.relay.pytest_plugin import toxic_relay, toxic_relay_pool  # noqa: F401
from poetrynow.relay.testing import relay
from tests.support import ThreadedServer, exchange
from tests.time_limit import SynchronousTestCase


class EchoServer(ThreadedServer):
    """An echo upstream on plain sockets in a thread: the relay's reactor is in a thread of its own."""

    def handle(self, conn):
        with conn, contextlib.suppress(ConnectionResetError, BrokenPipeError):  # reset_peer's doing
            while data := conn.recv(65536):
                conn.sendall(data)


def reset_seen(port: int) -> tuple[bytes, str]:
    """What a client of a reset_peer relay sees: the reset comes whenever it comes, even
    before the client has half-closed (``shutdown`` then fails: not connected)."""
    try:
        return exchange(port, b"x", half_close=True)
    except OSError as e:
        if e.errno in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
            return b"", "Connection reset by peer"
        raise


@pytest.fixture(scope="module")
def echo():
    server = EchoServer()
    yield server.port
    server.close()


def test_the_fixture_relays_with_a_toxic(toxic_relay, echo):  # noqa: F811
    control = toxic_relay(("127.0.0.1", echo))
    control.add("limit_data", bytes=5)
    assert exchange(control.address[1], b"hello world", half_close=True) == (b"hello", "closed")


def test_the_fixture_reset_the_relay_after_the_last_test(toxic_relay, echo):  # noqa: F811
    control = toxic_relay(("127.0.0.1", echo))
    assert control.toxics == []
    assert exchange(control.address[1], b"hello world", half_close=True) == (b"hello world", "closed")


def test_the_fixture_takes_a_seed_and_counts_from_one_in_each_test(toxic_relay, echo):  # noqa: F811
    control = toxic_relay(("127.0.0.1", echo), seed=7)
    assert (control.relay.seed, control.relay.count) == (7, 0)
    assert exchange(control.address[1], b"one", half_close=True) == (b"one", "closed")
    assert control.relay.count == 1


def test_the_next_test_starts_from_connection_one_again(toxic_relay, echo):  # noqa: F811
    control = toxic_relay(("127.0.0.1", echo))
    assert (control.relay.seed, control.relay.count) == (None, 0)


class HelperTests(SynchronousTestCase):
    def test_relay_from_a_synchronous_test(self):
        server = EchoServer()
        self.addCleanup(server.close)
        with relay(f"127.0.0.1:{server.port}", seed=1) as control:
            host, port = control.address
            self.assertEqual(host, "127.0.0.1")
            name = control.add("slicer", stream="upstream", average_size=3, delay=100)
            self.assertEqual(name, "slicer_upstream")
            self.assertEqual(exchange(port, b"sliced", half_close=True), (b"sliced", "closed"))
            control.update(name, toxicity=0)
            control.add("reset_peer", timeout=0)
            self.assertEqual(reset_seen(port), (b"", "Connection reset by peer"))
            control.remove("reset_peer_downstream")
            control.disable()
            with self.assertRaises(ConnectionRefusedError):
                exchange(port, b"x")
            control.reset()
            self.assertEqual([control.toxics, control.address[1]], [[], port])
            self.assertEqual(exchange(port, b"back", half_close=True), (b"back", "closed"))

    def test_the_plugin_is_registered_as_pytest11(self):
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        entry_points = tomllib.loads(pyproject.read_text())["project"]["entry-points"]["pytest11"]
        self.assertEqual(entry_points, {"poetrynow": "poetrynow.relay.pytest_plugin"})
