"""HTTP-aware toxics, met by real clients: http.client on a keep-alive connection, urllib, curl.

A real ``poetrynow faults`` process in front of a real HTTP/1.1 server (Python's, in a
thread, keep-alive). Each toxic is added while a connection is open, after its first
request, so that it meets the second request of that one connection: the toxics act
per request or response, not per connection. Then the limits (a malformed request, a
header block too large), a stream that is not HTTP, bad attributes, and toxiproxy's own
Python client still driving the API unmodified.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request

from tests.support import DEADLINE
from tests.test_faults_api import PoemServer, start_faults
from tests.test_relay_tls import PAGE, Upstream
from tests.time_limit import SynchronousTestCase
from tests.toxiproxy_client import ToxiproxyError


class HttpToxicTests(SynchronousTestCase):
    def setUp(self):
        self.faults, self.api = start_faults(self, "--seed", "7")
        self.upstream = Upstream(self)
        self.proxy = self.api.create("web", f"127.0.0.1:{self.upstream.port}")
        self.port = self.proxy.listen_port
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        self.addCleanup(self.connection.close)
        self.assertEqual(self.get(), (200, PAGE))  # the first request, before any toxic

    def get(self, path: str = "/") -> tuple[int, bytes]:
        self.connection.request("GET", path)
        answer = self.connection.getresponse()
        return answer.status, answer.read()

    def timed_get(self) -> tuple[float, float, bytes]:
        """The second request by hand on a socket of its own: seconds to the end of the headers,
        seconds to the end of the body, and what came."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        self.addCleanup(sock.close)
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got, headers_at = b"", None
        while not got.endswith(PAGE):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
            if headers_at is None and b"\r\n\r\n" in got:
                headers_at = time.monotonic() - started
        return headers_at or 0.0, time.monotonic() - started, got

    def test_http_status_answers_the_second_request_itself(self):
        self.proxy.add_toxic("http_status", code=503, body="down for a test", headers={"Retry-After": "1"})
        self.connection.request("GET", "/")
        answer = self.connection.getresponse()
        self.assertEqual((answer.status, answer.read()), (503, b"down for a test"))
        self.assertEqual(answer.getheader("Retry-After"), "1")
        self.assertEqual(self.upstream.requests, 1)  # it never reached the upstream
        self.proxy.remove_toxic("http_status_upstream")
        self.assertEqual(self.get(), (200, PAGE))  # and the connection goes on
        self.assertEqual(self.upstream.requests, 2)

    def test_http_status_to_urllib(self):
        self.proxy.add_toxic("http_status", code=429, body="slow down")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=DEADLINE)
        self.assertEqual((refused.exception.code, refused.exception.read()), (429, b"slow down"))

    def test_http_latency_holds_a_response_before_its_first_byte(self):
        self.proxy.add_toxic("http_latency", latency=400)
        started = time.monotonic()
        self.assertEqual(self.get(), (200, PAGE))
        self.assertGreaterEqual(time.monotonic() - started, 0.4)

    def test_http_slow_headers_sends_header_lines_apart(self):
        self.proxy.add_toxic("http_slow_headers", delay=100)
        started = time.monotonic()
        self.connection.request("GET", "/")
        answer = self.connection.getresponse()  # (http.client reads the whole header block)
        lines = 4  # the status line, Server, Date, Content-Length, then the blank line
        self.assertGreaterEqual(time.monotonic() - started, lines * 0.1)
        self.assertEqual(answer.read(), PAGE)

    def test_http_slow_body_sends_the_headers_at_once_and_the_body_at_its_rate(self):
        self.proxy.add_toxic("http_slow_body", rate=5)  # 5 KB/s: PAGE's 2,720 bytes take 0.5 s
        headers_at, ended_at, got = self.timed_get()
        self.assertTrue(got.endswith(PAGE), got[-100:])
        self.assertGreaterEqual(ended_at, len(PAGE) / 5000 - 0.1)
        self.assertLess(headers_at, ended_at)  # (the headers first; how far apart is the stage test's)

    def test_http_drop_after_the_headers(self):
        self.proxy.add_toxic("http_drop", after="headers")
        self.connection.request("GET", "/")
        answer = self.connection.getresponse()
        self.assertEqual(answer.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            answer.read()

    def test_http_drop_after_the_request(self):
        self.proxy.add_toxic("http_drop", stream="upstream", after="request")
        self.connection.request("GET", "/")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.connection.getresponse()
        self.assertEqual(self.upstream.requests, 1)

    def test_toxicity_meets_some_requests_of_one_connection(self):
        self.proxy.add_toxic("http_status", toxicity=0.5, code=503)
        statuses = [self.get()[0] for _ in range(40)]
        self.assertEqual(set(statuses), {200, 503})  # per request, on one connection

    def test_a_malformed_request_costs_its_connection_only(self):
        self.proxy.add_toxic("http_latency", stream="upstream", latency=0)
        block = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (n, b"c" * 4000) for n in range(20))
        cases = {
            "a line over 8192 bytes": b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
            "a header block over 65536 bytes": block + b"\r\n",
            "a bad Content-Length": b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        }
        for reason, data in cases.items():
            with self.subTest(reason=reason):
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
                self.addCleanup(sock.close)
                try:
                    sock.sendall(data)
                    self.assertEqual(sock.recv(65536), b"")
                except ConnectionError:
                    pass  # (reset: as a malformed message costs its connection)
                said = self.faults.out.until(lambda line, reason=reason: reason in line, DEADLINE)[-1]
                self.assertIn("it is reset", said)
        self.assertEqual(self.get(), (200, PAGE))  # the connection open before goes on

    def test_bad_attributes_are_a_400_that_says_why(self):
        cases = {
            "code must be a status from 200 to 599": ("http_status", {"code": 99}),
            "after must be 'headers' or 'request'": ("http_drop", {"after": "body"}),
            "values of one line": ("http_status", {"headers": {"X": "a\r\nb"}}),
            "sets Content-Length itself": ("http_status", {"headers": {"Content-Length": "9"}}),
            "latency must be a whole number": ("http_latency", {"latency": "soon"}),
        }
        for reason, (kind, attributes) in cases.items():
            with self.subTest(reason=reason):
                with self.assertRaises(ToxiproxyError) as refused:
                    self.proxy.add_toxic(kind, **attributes)
                self.assertEqual(refused.exception.status, 400)
                self.assertIn(reason, refused.exception.message)
        with self.assertRaises(ToxiproxyError) as refused:
            self.proxy.add_toxic("http_status", stream="downstream")
        self.assertIn("its stream is upstream", refused.exception.message)


class NotHttpTests(SynchronousTestCase):
    def test_a_stream_that_is_not_http_passes_untouched_and_then_is_refused_http_toxics(self):
        from tests.test_faults_api import POEM

        faults, api = start_faults(self)
        poems = PoemServer()
        self.addCleanup(poems.close)
        proxy = api.create("poem", f"127.0.0.1:{poems.port}")
        proxy.add_toxic("http_latency", latency=1000)
        with socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=DEADLINE) as sock:
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
        self.assertEqual(got, POEM)  # whole, and not held for a second
        said = faults.out.until(lambda line: "not an HTTP response" in line, DEADLINE)[-1]
        self.assertIn("its bytes go on untouched", said)
        with self.assertRaises(ToxiproxyError) as refused:
            proxy.add_toxic("http_slow_body", rate=1)
        self.assertEqual(refused.exception.status, 400)
        self.assertIn("stream is not HTTP", refused.exception.message)
        proxy.add_toxic("latency", latency=1)  # a byte toxic still may


class ToxiproxyPythonTests(SynchronousTestCase):
    def test_toxiproxy_s_own_client_drives_a_plain_relay_unmodified(self):
        from toxiproxy import Toxiproxy
        from toxiproxy.api import APIConsumer

        _, api = start_faults(self)
        upstream = Upstream(self)
        self.patch(APIConsumer, "port", int(api.url.rsplit(":", 1)[1]))  # (its one setting: where)
        server = Toxiproxy()
        self.assertTrue(server.running())
        proxy = server.create(upstream=f"127.0.0.1:{upstream.port}", name="plain", listen="127.0.0.1:0")
        listen = server.get_proxy("plain").listen
        port = int(listen.rsplit(":", 1)[1])
        proxy.add_toxic(name="slow", type="latency", attributes={"latency": 300})
        self.assertEqual(sorted(proxy.toxics()), ["slow"])
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=DEADLINE) as answer:
            self.assertEqual(answer.read(), PAGE)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        api.request("POST", "/proxies/plain/toxics", {"type": "http_status", "attributes": {"code": 502}})
        self.assertEqual(sorted(proxy.toxics()), ["http_status_upstream", "slow"])  # it reads ours too
        proxy.destroy_toxic("slow")
        proxy.destroy_toxic("http_status_upstream")
        with proxy.down(), self.assertRaises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=DEADLINE)
        server.reset()
        server.destroy(proxy)
        self.assertEqual(server.proxies(), {})
