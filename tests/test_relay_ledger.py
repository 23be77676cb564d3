"""A relayed connection's HTTP toxics as one: the request each response answers, and the order of
the relay's own answers, on a real Connection over string transports and a task.Clock.

Each test here is a case one direction's framer alone got wrong: a response to HEAD, a 2xx to
CONNECT, an Upgrade the server declines, an ``http_status`` answer to a pipelined request
(which must wait for the response before it), a client that reads none of those answers
(whose requests must then wait), a swallowing toxic removed mid-request, and a 1xx.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from poetrynow.relay.connection import Connection
from poetrynow.relay.httpledger import MAX_ASKED
from poetrynow.relay.toxics import make_toxic
from tests.time_limit import SynchronousTestCase


class FakeRelay:
    name, upstream, reactor, tls, not_http = "web", "127.0.0.1:1", None, None, None

    def __init__(self, clock: Clock):
        self.clock, self.toxics = clock, []

    def chooser(self, number: int, key: str) -> random.Random:
        return random.Random(f"{number}:{key}")

    def forget(self, connection) -> None:
        pass


class HalfClosing(StringTransport):
    """A TCP transport's half-close, as a string transport's own is missing."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Side:
    gone = False

    def __init__(self):
        self.transport = HalfClosing()

    def deliver_early(self, direction) -> None:
        pass


HEAD_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
PAGE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


class LedgerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.relay = FakeRelay(self.clock)
        self.client, self.server = Side(), Side()
        self.connection = Connection(self.relay, 1, self.client)
        self.connection.connected(self.server)

    def toxic(self, kind: str, stream: str = "downstream", **attributes):
        toxic = make_toxic({"type": kind, "stream": stream, "attributes": attributes})
        self.relay.toxics.append(toxic)
        self.connection.add(toxic)
        return toxic

    def send(self, data: bytes) -> None:
        """The client sends ``data``."""
        self.connection.up.data(data)

    def answer(self, data: bytes) -> None:
        """The upstream sends ``data``."""
        self.connection.down.data(data)

    def to_client(self) -> bytes:
        return self.client.transport.value()

    def to_server(self) -> bytes:
        return self.server.transport.value()

    def test_a_response_to_head_has_no_body_and_the_next_meets_its_own_latency(self):
        self.toxic("http_latency", latency=100)
        self.send(b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        self.answer(HEAD_RESPONSE)
        self.clock.advance(0.05)
        self.answer(PAGE)  # (read alone, these would be the five bytes of the HEAD response's body)
        self.clock.advance(0.05)
        self.assertEqual(self.to_client(), HEAD_RESPONSE)
        self.clock.advance(0.05)
        self.assertEqual(self.to_client(), HEAD_RESPONSE + PAGE)  # 0.1 s after its own head

    def test_an_answer_of_the_relay_s_waits_for_the_response_before_it(self):
        self.toxic("http_latency", latency=0)  # (the relay reads this connection's requests from here)
        self.send(b"GET /first HTTP/1.1\r\n\r\n")
        self.toxic("http_status", stream="upstream", code=503, body="later")  # (the first one has gone)
        self.send(b"GET /second HTTP/1.1\r\n\r\n")
        self.assertEqual(self.to_client(), b"")  # not before the first one's response
        self.answer(PAGE[:-1])
        self.assertEqual(self.to_client(), PAGE[:-1])  # (its body under way)
        self.answer(PAGE[-1:])
        self.assertTrue(self.to_client().startswith(PAGE + b"HTTP/1.1 503 "), self.to_client())
        self.assertTrue(self.to_client().endswith(b"\r\n\r\nlater"))
        self.assertEqual(self.to_server(), b"GET /first HTTP/1.1\r\n\r\n")

    def test_a_client_that_reads_no_answer_is_held_back(self):
        self.toxic("http_status", stream="upstream", code=503, body="x" * 1000)
        self.connection.down.pauseProducing()  # (the client's buffer is full: it reads nothing)
        self.send(b"GET / HTTP/1.1\r\n\r\n" * 1000)
        self.connection.up.eof()  # (and its FIN, which waits behind the requests held back)
        self.assertEqual(self.client.transport.producerState, "paused")  # its reading paused
        self.assertFalse(self.connection.up.done)
        self.assertLessEqual(self.connection.down.held(), MAX_ASKED * 1100)  # (not a thousand answers held)
        self.connection.down.resumeProducing()
        self.assertEqual(self.to_client().count(b"HTTP/1.1 503 "), 1000)
        self.assertTrue(self.connection.up.done)  # the FIN went on after the last of them

    def test_a_swallowing_toxic_removed_mid_request_swallows_the_rest_of_it(self):
        toxic = self.toxic("http_status", stream="upstream")
        self.send(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")
        self.connection.remove(toxic)
        self.send(b"456789GET /next HTTP/1.1\r\n\r\n")
        self.assertEqual(self.to_server(), b"GET /next HTTP/1.1\r\n\r\n")  # no headless body
        self.assertTrue(self.to_client().startswith(b"HTTP/1.1 503 "))
        self.assertEqual(self.connection.up.stages, [])  # (its watchers gone with the last HTTP toxic)
        self.assertIsNone(self.connection.ledger)

    def test_a_declined_upgrade_leaves_the_requests_http(self):
        self.toxic("http_latency", stream="upstream", latency=100)
        self.send(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
        self.clock.advance(0.1)
        self.answer(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
        self.send(b"GET / HTTP/1.1\r\n\r\n")
        self.clock.advance(0.05)
        self.assertNotIn(b"GET / ", self.to_server())  # a request still, so it waits its latency
        self.clock.advance(0.05)
        self.assertTrue(self.to_server().endswith(b"GET / HTTP/1.1\r\n\r\n"))

    def test_an_accepted_upgrade_or_a_tunnel_is_bytes_both_ways(self):
        for request, response in (
            (b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            (b"CONNECT x:443 HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 Connection established\r\n\r\n"),
        ):
            with self.subTest(request=request):
                self.setUp()
                self.toxic("http_latency", stream="upstream", latency=100)
                self.toxic("http_latency", latency=100)
                self.send(request)
                self.clock.advance(0.1)
                self.answer(response)
                self.clock.advance(0.1)
                self.send(b"\x16\x03\x01 not HTTP")
                self.answer(b"\x16\x03\x03 nor this")
                self.assertTrue(self.to_server().endswith(b"\x16\x03\x01 not HTTP"))  # at once
                self.assertTrue(self.to_client().endswith(b"\x16\x03\x03 nor this"))
                self.assertIsNone(self.relay.not_http)
                self.assertFalse(self.connection.ended)

    def test_a_1xx_goes_on_at_once_and_its_final_response_meets_the_toxic(self):
        self.toxic("http_latency", latency=100)
        self.send(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        self.answer(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual(self.to_client(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.send(b"hi")
        self.answer(PAGE)
        self.clock.advance(0.1)
        self.assertEqual(self.to_client(), b"HTTP/1.1 100 Continue\r\n\r\n" + PAGE)

    def test_an_upgrade_the_relay_answers_itself_leaves_the_requests_http(self):
        self.toxic("http_status", stream="upstream", code=503)
        self.send(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        self.send(b"GET /next HTTP/1.1\r\n\r\n")  # (after its 503: HTTP still, not held)
        self.assertEqual(self.to_client().count(b"HTTP/1.1 503 "), 2)
        self.assertEqual(self.to_server(), b"")

    def test_a_toxic_that_joins_while_a_request_is_held_passes_that_connection_untouched(self):
        self.toxic("http_latency", stream="upstream", latency=1000)
        self.send(b"GET /held HTTP/1.1\r\n\r\n")
        self.clock.advance(0.5)
        self.toxic("http_status", stream="upstream")  # (the request it would take is held before it)
        self.clock.advance(0.5)
        self.assertEqual(self.to_server(), b"GET /held HTTP/1.1\r\n\r\n")  # not taken without its record
        self.answer(PAGE)
        self.assertEqual(self.to_client(), PAGE)  # and the ledger is not stuck on it
        self.send(b"GET /again HTTP/1.1\r\n\r\n")
        self.clock.advance(1)
        self.assertTrue(self.to_server().endswith(b"GET /again HTTP/1.1\r\n\r\n"))

    def test_removing_the_last_http_toxic_removes_the_watchers(self):
        toxic = self.toxic("http_latency", latency=0)
        self.connection.remove(toxic)
        self.assertEqual((self.connection.up.stages, self.connection.down.stages), ([], []))
        big = b"GET / HTTP/1.1\r\nX: " + b"a" * 7000 + b"\r\n" + b"Y: b\r\n" * 10000 + b"\r\n"
        self.send(big)  # (over 64 KiB of header: no HTTP toxic is left to refuse it)
        self.assertEqual(self.to_server(), big)
        self.assertFalse(self.connection.ended)

    def test_answers_held_by_a_downstream_toxic_hold_the_client_back(self):
        self.toxic("http_status", stream="upstream", code=503, body="x" * 1000)
        self.toxic("latency", latency=1000)  # (it holds every answer a second)
        self.send(b"GET / HTTP/1.1\r\n\r\n" * 2000)
        self.assertEqual(self.client.transport.producerState, "paused")
        self.assertLess(self.connection.down.held(), self.connection.down.limit + MAX_ASKED * 1100)
        for _ in range(200):
            self.clock.advance(1)  # (no read comes to the paused client: the answers' going wakes it)
        self.assertEqual(self.to_client().count(b"HTTP/1.1 503 "), 2000)

    def test_an_upstream_that_ends_lets_the_requests_held_back_go(self):
        self.toxic("http_latency", latency=0)
        self.send(b"GET / HTTP/1.1\r\n\r\n" * (MAX_ASKED + 8))
        self.assertEqual(self.to_server().count(b"GET /"), MAX_ASKED)  # the rest held back
        self.connection.down.eof()  # the upstream answers none and closes
        self.assertEqual(self.to_server().count(b"GET /"), MAX_ASKED + 8)

    def test_a_1xx_and_its_final_response_in_one_read_after_a_head(self):
        self.toxic("http_latency", latency=0)
        self.send(b"HEAD /a HTTP/1.1\r\n\r\n")
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")  # (no body: a HEAD's)
        self.send(b"POST /b HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
        self.answer(b"HTTP/1.1 100 Continue\r\n\r\n" + PAGE)  # (its final response is a POST's)
        self.send(b"GET /c HTTP/1.1\r\n\r\n")
        self.answer(PAGE)
        self.assertFalse(self.connection.ended)
        self.assertTrue(self.to_client().endswith(PAGE + PAGE))

    def test_the_watchers_leave_after_the_response_under_way_not_into_it(self):
        latency = self.toxic("http_latency", latency=0)
        self.send(b"GET /a HTTP/1.1\r\n\r\n")
        status = self.toxic("http_status", stream="upstream", code=503)
        self.send(b"GET /b HTTP/1.1\r\n\r\n")  # (answered by the relay, after /a's response)
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
        self.connection.remove(latency)
        self.connection.remove(status)
        self.answer(b"56789")
        self.assertTrue(
            self.to_client().startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
        )
        self.assertIn(b"0123456789HTTP/1.1 503 ", self.to_client())
        self.assertIsNone(self.connection.ledger)  # (gone once that response ended)

    def test_the_watchers_leaving_pass_on_a_fin_they_held(self):
        self.connection.down.limit = 100
        toxic = self.toxic("http_latency", latency=0)
        self.toxic("latency", latency=1000)
        self.send(b"GET /a HTTP/1.1\r\n\r\n")
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"x" * 500)  # (held: over the limit)
        self.send(b"GET /b HTTP/1.1\r\n\r\n")  # (held back)
        self.connection.up.eof()
        self.connection.remove(toxic)
        self.assertEqual(self.to_server(), b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        self.assertTrue(self.connection.up.done)  # and the client's FIN after it

    def test_a_first_http_toxic_that_joins_mid_request_leaves_the_connection_alone(self):
        self.send(b"GET /big HTTP/1.1\r\n\r\n")  # (the client spoke last)
        self.toxic("http_latency", latency=1000)
        self.send(b"HEAD / HTTP/1.1\r\n\r\n")
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" + HEAD_RESPONSE)
        self.assertEqual(self.to_client(), PAGE + HEAD_RESPONSE)  # untouched: not held, not misread
        self.send(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
        self.answer(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        self.send(b"\x81\x05hello")
        self.assertTrue(self.to_server().endswith(b"\x81\x05hello"))  # nothing waits
        self.assertFalse(self.connection.ended)

    def test_the_watchers_leaving_keep_each_answer_in_its_turn(self):
        latency = self.toxic("http_latency", latency=0)
        self.send(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        status = self.toxic("http_status", stream="upstream", code=503)
        self.send(b"GET /c HTTP/1.1\r\n\r\n")  # (the relay's answer: after /a's and /b's)
        self.connection.remove(latency)
        self.connection.remove(status)
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nAAAA")
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nBBBB")
        got = self.to_client()
        self.assertLess(got.index(b"AAAA"), got.index(b"BBBB"))
        self.assertLess(got.index(b"BBBB"), got.index(b"HTTP/1.1 503 "))
        self.assertIsNone(self.connection.ledger)  # (gone once the last answer had gone)

    def test_a_response_cut_short_lets_the_answers_and_the_watchers_go(self):
        latency = self.toxic("http_latency", latency=0)
        self.send(b"GET /a HTTP/1.1\r\n\r\n")
        status = self.toxic("http_status", stream="upstream", code=503)
        self.send(b"GET /b HTTP/1.1\r\n\r\n")
        self.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
        self.connection.remove(latency)
        self.connection.remove(status)
        self.connection.down.eof()  # (the upstream gives up mid-body)
        self.assertTrue(
            self.to_client().endswith(b"01234HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        )
        self.assertIsNone(self.connection.ledger)
        self.assertEqual(self.connection.up.stages, [])

    def test_an_upgrade_the_relay_answers_keeps_its_own_answer_when_the_upstream_ends(self):
        self.toxic("http_latency", latency=0)
        self.send(b"GET /a HTTP/1.1\r\n\r\n")
        self.answer(b"HTTP/1.1 200 OK\r\n\r\nto the close ")  # (a body to the stream's end)
        self.toxic("http_status", stream="upstream", code=503)
        self.send(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
        self.connection.down.eof()
        self.assertIn(b"HTTP/1.1 503 ", self.to_client())  # (its answer, before the upstream's FIN)
        self.send(b"GET /next HTTP/1.1\r\n\r\n")
        self.assertNotIn(b"/next", self.to_server())  # (HTTP still, after the relay's 503: not raw)

    def test_a_later_http_toxic_acts_once_the_first_connection_s_doubt_is_gone(self):
        self.send(b"GET /a HTTP/1.1\r\n\r\n")
        first = self.toxic("http_status", stream="upstream")  # (the client spoke last: left alone)
        self.answer(PAGE)
        self.connection.remove(first)
        self.toxic("http_status", stream="upstream")  # (now the upstream spoke last)
        self.send(b"GET /b HTTP/1.1\r\n\r\n")
        self.assertTrue(
            self.to_client().endswith(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        )
        self.assertNotIn(b"/b", self.to_server())

    def test_an_upstream_s_end_lets_the_watchers_leave_that_were_waiting(self):
        latency = self.toxic("http_latency", latency=0)
        self.send(b"GET /a HTTP/1.1\r\n\r\n")
        status = self.toxic("http_status", stream="upstream", code=503)
        self.send(b"GET /b HTTP/1.1\r\n\r\n")  # (its answer waits for /a's response)
        self.connection.remove(latency)
        self.connection.remove(status)
        self.assertIsNotNone(self.connection.ledger)  # (waiting for that response)
        self.connection.down.eof()  # (which never comes)
        self.assertIn(b"HTTP/1.1 503 ", self.to_client())
        self.assertIsNone(self.connection.ledger)  # the watchers gone: its bytes are not read as HTTP
        self.send(b"no colon here\r\n\r\n")
        self.assertFalse(self.connection.ended)
