"""Descriptors held by clients that are gone (issue 22, item 5), both editions of the slow server.

A client that resets while the server waits long for its next chunk is dropped
at once (the GoneWatch), not when the chunk is due; one that only half-closed
keeps its poem; every accepted connection has TCP keepalive, so that one that
closed and was forgotten by its host is found by a probe.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from twisted.internet.threads import blockingCallFromThread

from poetrynow.servers.common.gone import KEEPALIVE_IDLE, keep_alive
from tests.support import DEADLINE, Editions, ServersInAThread, plain_twin
from tests.time_limit import PyUnitTestCase

#: Seconds between chunks: a wait no test sits out.
LONG = 60.0


def factory_of(servers: ServersInAThread, port: int):
    return next(tree for tree in servers.trees if tree.listener.port == port).listener.factory


def live(servers: ServersInAThread, factory) -> int:
    return blockingCallFromThread(servers.reactor, lambda: len(factory.live))


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        time.sleep(0.02)


class GoneClientTests(Editions, PyUnitTestCase):
    def serve(self) -> tuple[ServersInAThread, int, object]:
        servers = ServersInAThread(self, plain=self.plain)
        port = servers.slow("kettle", 10, LONG)
        return servers, port, factory_of(servers, port)

    def first_chunk(self, port: int, half_close: bool = False) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.addCleanup(sock.close)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        self.assertEqual(len(sock.recv(100)), 10)  # the first chunk; the next is a minute away
        return sock

    def test_a_client_that_resets_mid_wait_is_dropped_at_once(self):
        servers, port, factory = self.serve()
        clients = [self.first_chunk(port) for _ in range(5)]
        wait_for(lambda: live(servers, factory) == 5, "five clients served")
        for sock in clients[:3]:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        wait_for(lambda: live(servers, factory) == 2, "the three that reset dropped")

    def test_a_client_that_half_closed_then_reset_is_dropped_at_once(self):
        # After its FIN the transport no longer watches the socket: the GoneWatch does.
        servers, port, factory = self.serve()
        sock = self.first_chunk(port, half_close=True)
        stays = self.first_chunk(port, half_close=True)
        wait_for(lambda: live(servers, factory) == 2, "both clients served")

        def watched() -> int:
            # A bare client (the fast edition) is watched from the start; a transport once its FIN came.
            return sum(hasattr(c, "fd") or c.watched is not None for c in factory.live)

        wait_for(lambda: blockingCallFromThread(servers.reactor, watched) == 2, "both FINs heard")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_for(lambda: live(servers, factory) == 1, "the client that reset dropped")
        self.assertIsNotNone(stays.fileno())

    def test_accepted_connections_have_keepalive(self):
        servers, port, factory = self.serve()
        self.first_chunk(port)
        wait_for(lambda: live(servers, factory) == 1, "one client served")

        def options() -> tuple[int, int]:
            client = next(iter(factory.live))
            fd = client.fd if hasattr(client, "fd") else client.transport.fileno()
            with socket.socket(fileno=os.dup(fd)) as server_side:
                return (
                    server_side.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                )

        self.assertEqual(blockingCallFromThread(servers.reactor, options), (1, KEEPALIVE_IDLE))


PlainGoneClientTests = plain_twin(GoneClientTests)


class KeepAliveTests(PyUnitTestCase):
    def test_a_listening_socket_hands_keepalive_to_what_it_accepts(self):
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            listening.listen()
            keep_alive(listening)
            with socket.create_connection(listening.getsockname(), timeout=DEADLINE):
                accepted, _ = listening.accept()
                with accepted:
                    self.assertEqual(accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)

    def test_a_unix_socket_is_left_alone(self):
        with socket.socket(socket.AF_UNIX) as unix:
            keep_alive(unix)  # no TCP options to set: no error either
