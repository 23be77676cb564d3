"""1,500 downloads at once with the select engine: past select()'s 1024-descriptor cap."""

import selectors
import socket
import threading

from poetrynow.address import Address
from poetrynow.cli.common import raise_fd_limit
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import Finished
from tests.time_limit import SynchronousTestCase

CLIENTS = 1500
FIRST, SECOND = "Ça va, ".encode(), "world: déjà vu.\n".encode()


class HoldingServer(threading.Thread):
    """Accepts every connection and sends the first half of the poem at once, but
    the second half, and the close, only when all CLIENTS are connected: so every
    download finishes only if the client really held them all open together."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.port = self.listener.getsockname()[1]
        self.peak = 0
        self.error = None

    def run(self):
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        clients = []
        try:
            while len(clients) < CLIENTS:
                if not selector.select(timeout=30):
                    raise TimeoutError(f"only {len(clients)} clients connected")
                while len(clients) < CLIENTS:
                    try:
                        conn, _ = self.listener.accept()
                    except BlockingIOError:
                        break
                    conn.sendall(FIRST)
                    clients.append(conn)
            self.peak = len(clients)
            for conn in clients:
                conn.sendall(SECOND)
                conn.close()
        except Exception as error:  # reported by the test
            self.error = error
        finally:
            selector.close()
            self.listener.close()


class ManyDownloadsTests(SynchronousTestCase):
    def test_fifteen_hundred_simultaneous_downloads(self):
        if raise_fd_limit() < 2 * CLIENTS + 100:
            self.skipTest("the open-files limit is too low for this test")
        server = HoldingServer()
        server.listener.setblocking(False)
        server.start()
        events = []
        run_engine(
            "select", [Address("127.0.0.1", server.port)] * CLIENTS, events.append, EngineOptions(timeout=60)
        )
        server.join(30)
        self.assertIsNone(server.error)
        self.assertEqual(server.peak, CLIENTS)
        finished = [e for e in events if isinstance(e, Finished)]
        self.assertEqual(len(finished), CLIENTS)
        self.assertEqual({e.poem for e in finished}, {FIRST + SECOND})
        self.assertEqual(sorted(e.task for e in finished), list(range(1, CLIENTS + 1)))
