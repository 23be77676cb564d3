"""``poetrynow faults``: toxiproxy's HTTP API, its status codes and JSON shapes, and its relays.

Two layers, as the rest of the suite has them. :class:`ApiTests` drives the
twisted.web site with raw HTTP bytes over a StringTransport, over a small fake
of the relays' contract, so that each endpoint's answer is checked in
microseconds. The classes after them run the real command as a subprocess and
talk to it with :mod:`tests.toxiproxy_client` (a client written only from
toxiproxy's documentation) and real sockets, through relays in front of real
servers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from poetrynow.relay.site import MAX_BODY, faults_site
from poetrynow.relay.toxics import ApiError, make_toxic, updated_toxic
from tests.support import (
    DEADLINE,
    Child,
    Server,
    StallingServer,
    ThreadedServer,
    command,
    connect,
    read_to_end,
    run,
    temp_dir,
)
from tests.time_limit import SynchronousTestCase
from tests.toxiproxy_client import Toxiproxy, ToxiproxyError

# --- the API over a fake of the relays' contract --------------------------------------------


class FakeRelay:
    """One relay as :class:`~poetrynow.relay.relay.Relay` presents itself to the API; no sockets."""

    def __init__(self, name: str, listen: str, upstream: str, enabled: bool):
        self.name, self.listen, self.upstream, self.enabled = name, listen, upstream, enabled
        self.toxics: dict = {}

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.as_json() for toxic in self.toxics.values()],
        }

    def add_toxic(self, body):
        toxic = make_toxic(body)
        if toxic.name in self.toxics:
            raise ApiError(409, "toxic already exists")
        self.toxics[toxic.name] = toxic
        return toxic

    def toxic(self, name: str):
        if name not in self.toxics:
            raise ApiError(404, "toxic not found")
        return self.toxics[name]

    def update_toxic(self, name: str, body):
        self.toxics[name] = updated_toxic(self.toxic(name), body)
        return self.toxics[name]

    def remove_toxic(self, name: str) -> None:
        self.toxic(name)
        del self.toxics[name]


class FakeRelays:
    """The relays' contract, kept in a dict; port 0 becomes 40000 and up, as if the kernel chose."""

    def __init__(self):
        self.relays: dict[str, FakeRelay] = {}
        self.next_port = 40000
        self.deleting: defer.Deferred | None = None  # set: delete waits for the test to fire it

    def create(self, body) -> FakeRelay:
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise ApiError(400, "missing required field: name")
        if body["name"] in self.relays:
            raise ApiError(409, "proxy already exists")
        listen = body.get("listen") or "127.0.0.1:0"
        if listen.endswith(":0"):
            listen, self.next_port = f"{listen[:-2]}:{self.next_port}", self.next_port + 1
        relay = FakeRelay(body["name"], listen, body.get("upstream", ""), body.get("enabled", True))
        self.relays[relay.name] = relay
        return relay

    def get(self, name: str) -> FakeRelay:
        if name not in self.relays:
            raise ApiError(404, "proxy not found")
        return self.relays[name]

    def update(self, name: str, body) -> FakeRelay:
        relay = self.get(name)
        if "enabled" in body:
            relay.enabled = body["enabled"]
        return relay

    def delete(self, name: str) -> defer.Deferred:
        self.get(name)
        del self.relays[name]
        return self.deleting if self.deleting is not None else defer.succeed(None)

    def all(self) -> dict[str, FakeRelay]:
        return dict(self.relays)

    def populate(self, bodies) -> list[FakeRelay]:
        if not all(isinstance(body, dict) and body.get("name") for body in bodies):
            raise ApiError(400, "missing required field: name at proxy 1")
        return [self.relays.get(body["name"]) or self.create(body) for body in bodies]

    def reset(self) -> None:
        for relay in self.relays.values():
            relay.enabled = True
            relay.toxics.clear()


class Answer:
    """One HTTP response, parsed from the bytes the site wrote."""

    def __init__(self, raw: bytes):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        if "content-length" in self.headers:
            self.body = self.body[: int(self.headers["content-length"])]

    def json(self):
        return json.loads(self.body)


class ApiTests(SynchronousTestCase):
    """Each endpoint, over raw HTTP bytes: its status, its JSON, its defaults and its refusals."""

    def setUp(self):
        self.relays = FakeRelays()
        self.clock = task.Clock()
        self.site = faults_site(self.relays, version="9.8.7", reactor=self.clock)

    def connect(self):
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, headers: str = "") -> Answer:
        if raw is None:
            raw = b"" if body is None else json.dumps(body).encode()
        channel, transport = self.connect()
        request = f"{method} {path} HTTP/1.1\r\nHost: api\r\n{headers}Content-Length: {len(raw)}\r\n\r\n"
        channel.dataReceived(request.encode() + raw)
        answer = Answer(transport.value())
        channel.connectionLost(Failure(ConnectionDone()))
        return answer

    def assertRefused(self, answer: Answer, status: int, words: str = "") -> None:
        self.assertEqual(answer.status, status, answer.body)
        self.assertEqual(answer.headers["content-type"], "application/json")
        self.assertEqual(answer.json()["status"], status)
        self.assertIn(words, answer.json()["error"])

    def create(self, name: str = "db", **fields) -> Answer:
        return self.call("POST", "/proxies", {"name": name, "upstream": "127.0.0.1:5432", **fields})

    def test_version_is_json(self):
        answer = self.call("GET", "/version")
        self.assertEqual((answer.status, answer.json()), (200, {"version": "9.8.7"}))
        self.assertEqual(answer.headers["content-type"], "application/json")

    def test_no_proxies_is_an_empty_object(self):
        self.assertEqual(self.call("GET", "/proxies").json(), {})

    def test_create_answers_201_with_the_real_port_and_enabled_by_default(self):
        answer = self.create(listen="127.0.0.1:0")
        self.assertEqual(answer.status, 201)
        self.assertEqual(
            answer.json(),
            {
                "name": "db",
                "listen": "127.0.0.1:40000",
                "upstream": "127.0.0.1:5432",
                "enabled": True,
                "toxics": [],
            },
        )
        self.assertEqual(list(self.call("GET", "/proxies").json()), ["db"])

    def test_create_disabled(self):
        self.assertIs(self.create(enabled=False).json()["enabled"], False)

    def test_a_duplicate_is_409(self):
        self.create()
        self.assertRefused(self.create(), 409, "proxy already exists")

    def test_bad_bodies_are_400_in_toxiproxys_words(self):
        self.assertRefused(self.call("POST", "/proxies", raw=b"{not json"), 400, "bad request body")
        self.assertRefused(self.call("POST", "/proxies", raw=b""), 400, "bad request body: EOF")
        self.assertRefused(self.call("POST", "/proxies", raw=b"[1, 2]"), 400, "bad request body")
        self.assertRefused(self.call("POST", "/proxies", raw=b'{"name": NaN}'), 400, "bad request body")
        self.assertRefused(self.call("POST", "/proxies", raw=b"\xff\xfe\x00"), 400, "bad request body")
        self.assertRefused(self.call("POST", "/proxies", {"upstream": "x:1"}), 400, "missing required field")
        self.assertEqual(self.relays.relays, {})

    def test_show_update_and_delete_a_proxy(self):
        self.create()
        self.assertEqual(self.call("GET", "/proxies/db").json()["name"], "db")
        updated = self.call("POST", "/proxies/db", {"enabled": False})
        self.assertEqual((updated.status, updated.json()["enabled"]), (200, False))
        patched = self.call("PATCH", "/proxies/db", {"enabled": True})
        self.assertEqual((patched.status, patched.json()["enabled"]), (200, True))
        deleted = self.call("DELETE", "/proxies/db")
        self.assertEqual((deleted.status, deleted.body), (204, b""))
        self.assertRefused(self.call("GET", "/proxies/db"), 404, "proxy not found")

    def test_an_unknown_proxy_is_404_whatever_the_body(self):
        self.assertRefused(self.call("POST", "/proxies/nope", raw=b"{bad"), 404, "proxy not found")
        self.assertRefused(self.call("DELETE", "/proxies/nope"), 404, "proxy not found")
        self.assertRefused(self.call("GET", "/proxies/nope/toxics"), 404, "proxy not found")
        self.assertRefused(self.call("POST", "/proxies/nope/toxics", {"type": "latency"}), 404)
        self.assertRefused(self.call("GET", "/proxies/nope/toxics/latency_downstream"), 404)

    def test_a_delete_is_answered_once_the_relay_has_stopped(self):
        self.create()
        self.relays.deleting = defer.Deferred()
        channel, transport = self.connect()
        channel.dataReceived(b"DELETE /proxies/db HTTP/1.1\r\nHost: api\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        self.relays.deleting.callback(None)
        self.assertEqual(Answer(transport.value()).status, 204)

    def test_a_client_gone_before_the_delete_ends_costs_nothing(self):
        self.create()
        self.relays.deleting = defer.Deferred()
        channel, transport = self.connect()
        channel.dataReceived(b"DELETE /proxies/db HTTP/1.1\r\nHost: api\r\n\r\n")
        channel.connectionLost(Failure(ConnectionDone()))
        self.relays.deleting.callback(None)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_populate_answers_201_with_the_proxies(self):
        answer = self.call(
            "POST", "/populate", [{"name": "a", "upstream": "x:1"}, {"name": "b", "upstream": "x:2"}]
        )
        self.assertEqual(answer.status, 201)
        self.assertEqual([proxy["name"] for proxy in answer.json()["proxies"]], ["a", "b"])
        self.assertEqual(answer.json()["proxies"][0]["toxics"], [])

    def test_a_refused_populate_names_its_error_and_no_proxies(self):
        answer = self.call("POST", "/populate", [{"upstream": "x:1"}])
        self.assertRefused(answer, 400, "missing required field")
        self.assertEqual(answer.json()["proxies"], [])
        self.assertRefused(self.call("POST", "/populate", {"name": "a"}), 400, "bad request body")

    def test_toxics_added_shown_updated_and_removed(self):
        self.create()
        self.assertEqual(self.call("GET", "/proxies/db/toxics").json(), [])
        added = self.call("POST", "/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 300}})
        self.assertEqual(added.status, 200)  # toxiproxy's, not 201
        self.assertEqual(
            added.json(),
            {
                "name": "latency_downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": 300, "jitter": 0},
            },
        )
        self.assertEqual(self.call("GET", "/proxies/db/toxics/latency_downstream").json(), added.json())
        self.assertEqual(self.call("GET", "/proxies/db").json()["toxics"], [added.json()])
        updated = self.call("POST", "/proxies/db/toxics/latency_downstream", {"attributes": {"jitter": 50}})
        self.assertEqual(updated.json()["attributes"], {"latency": 300, "jitter": 50})
        patched = self.call("PATCH", "/proxies/db/toxics/latency_downstream", {"toxicity": 0.5})
        self.assertEqual(patched.json()["toxicity"], 0.5)
        removed = self.call("DELETE", "/proxies/db/toxics/latency_downstream")
        self.assertEqual((removed.status, removed.body), (204, b""))
        self.assertRefused(self.call("GET", "/proxies/db/toxics/latency_downstream"), 404, "toxic not found")

    def test_bad_toxics_are_refused(self):
        self.create()
        self.assertRefused(
            self.call("POST", "/proxies/db/toxics", {"type": "gremlin"}), 400, "invalid toxic type"
        )
        self.assertRefused(
            self.call("POST", "/proxies/db/toxics", {"type": "latency", "stream": "sideways"}), 400
        )
        self.assertRefused(self.call("POST", "/proxies/db/toxics", raw=b"[]"), 400, "bad request body")
        self.call("POST", "/proxies/db/toxics", {"type": "timeout"})
        self.assertRefused(
            self.call("POST", "/proxies/db/toxics", {"type": "timeout"}), 409, "toxic already exists"
        )
        self.assertRefused(self.call("DELETE", "/proxies/db/toxics/nope"), 404, "toxic not found")
        self.assertRefused(
            self.call("POST", "/proxies/db/toxics/nope", {"toxicity": 1}), 404, "toxic not found"
        )

    def test_reset_enables_every_proxy_and_removes_every_toxic(self):
        self.create(enabled=False)
        self.call("POST", "/proxies/db/toxics", {"type": "limit_data", "attributes": {"bytes": 5}})
        answer = self.call("POST", "/reset")
        self.assertEqual((answer.status, answer.body), (204, b""))
        shown = self.call("GET", "/proxies/db").json()
        self.assertEqual((shown["enabled"], shown["toxics"]), (True, []))

    def test_a_wrong_method_is_405_naming_the_right_ones(self):
        for method, path in [
            ("DELETE", "/proxies"),
            ("GET", "/reset"),
            ("PUT", "/proxies/db"),
            ("POST", "/version"),
        ]:
            answer = self.call(method, path)
            self.assertRefused(answer, 405, method)
            self.assertTrue(answer.headers["allow"])
        self.assertEqual(self.call("DELETE", "/proxies").headers["allow"], "GET, POST")

    def test_an_unknown_path_is_404(self):
        for path in ["/", "/nope", "/proxies/a/b", "/proxies//toxics", "/proxies/a/toxics/b/c"]:
            self.assertRefused(self.call("GET", path), 404, "not found")

    def test_names_are_url_decoded(self):
        self.create("my proxy")
        self.assertEqual(self.call("GET", "/proxies/my%20proxy").json()["name"], "my proxy")

    def test_a_browser_is_refused_as_toxiproxy_refuses_it(self):
        answer = self.call("GET", "/proxies", headers="User-Agent: Mozilla/5.0 (X11)\r\n")
        self.assertRefused(answer, 403, "user agent")

    def test_a_body_at_the_limit_is_read(self):
        body = json.dumps({"name": "db", "upstream": "x:1"}).encode()
        answer = self.call("POST", "/proxies", raw=body + b" " * (MAX_BODY - len(body)))
        self.assertEqual(answer.status, 201)

    def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(self):
        channel, transport = self.connect()
        head = (
            "POST /proxies HTTP/1.1\r\nHost: api\r\nExpect: 100-continue\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n"
        )
        channel.dataReceived(head.encode())
        answer = Answer(transport.value())
        self.assertRefused(answer, 413, "request body over")
        self.assertEqual(answer.headers["connection"], "close")
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertTrue(transport.disconnecting)
        channel.dataReceived(b"x" * 65536)  # what was on its way is dropped
        self.assertEqual(self.relays.relays, {})

    def test_a_chunked_body_is_refused_once_it_passes_the_limit(self):
        channel, transport = self.connect()
        channel.dataReceived(b"POST /populate HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        for _ in range(MAX_BODY // 65536 + 1):
            channel.dataReceived(chunk)
        channel.dataReceived(b"0\r\n\r\n")
        self.assertRefused(Answer(transport.value()), 413)
        self.assertEqual(transport.value().count(b"HTTP/1.1"), 1)

    def test_a_bug_costs_one_request_a_500_and_is_logged(self):
        def broken():
            raise RuntimeError("a bug")

        self.relays.all = broken  # type: ignore[method-assign]
        self.assertRefused(self.call("GET", "/proxies"), 500, "internal error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.call("GET", "/version").status, 200)

    def test_a_connection_serves_one_request_after_another(self):
        channel, transport = self.connect()
        one = b"GET /version HTTP/1.1\r\nHost: api\r\n\r\n"
        channel.dataReceived(one + one)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 2)


# --- the real command, its relays and real sockets ----------------------------------------

POEM = b"".join(b"line %d of a poem that flows through a relay\n" % n for n in range(40))


def start_faults(case, *args: str) -> tuple[Child, Toxiproxy]:
    """``poetrynow faults --api 127.0.0.1:0`` and a toxiproxy client for it, from its first line."""
    child = Child(command("poetrynow") + ["faults", "--api", "127.0.0.1:0", *args])
    case.addCleanup(child.stop)
    line = child.out.next_line(DEADLINE)
    if not line.startswith("Faults API on http://127.0.0.1:"):
        child.stop()
        raise AssertionError(f"no API line: {line!r} {child.stderr!r}")
    return child, Toxiproxy(line.split(" on ", 1)[1].strip())


class PoemServer(ThreadedServer):
    """An upstream in a thread that sends :data:`POEM` to each client and closes."""

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(POEM)


class EchoServer(ThreadedServer):
    """An upstream in a thread that sends back what each client sends, a thread per client."""

    def handle(self, conn: socket.socket) -> None:
        self.held.append(conn)
        threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Recorder(ThreadedServer):
    """An upstream in a thread that keeps what each client sent, once the client is done."""

    def __init__(self):
        self.received: list[bytes] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(DEADLINE)
            self.received.append(read_to_end(conn)[0])


def upstream(case, kind: type[ThreadedServer] = PoemServer, *args) -> str:
    server = kind(*args)
    case.addCleanup(server.close)
    return f"127.0.0.1:{server.port}"


def fetch(port: int) -> tuple[bytes, str]:
    """What a client gets through a relay, and how it ended (``read_to_end``'s words)."""
    try:
        sock = connect(port)
    except ConnectionResetError as reset:  # a reset that came before connect() had looked
        return b"", os.strerror(reset.errno)
    with sock:
        return read_to_end(sock)


def receive(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``, however they are split; fewer if it closes first."""
    parts: list[bytes] = []
    while size > 0 and (chunk := sock.recv(size)):
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
    except ConnectionRefusedError:
        return True
    return False


class RelayThroughApiTests(SynchronousTestCase):
    """A client written for toxiproxy drives the real command; bytes go through real relays."""

    def setUp(self):
        self.child, self.api = start_faults(self)

    def test_a_toxiproxy_client_creates_lists_and_deletes_a_relay_in_front_of_fastpoetry(self):
        server = Server("kettle", "--quiet", command_name="fastpoetry")
        self.addCleanup(server.stop)
        self.assertTrue(self.api.version())
        proxy = self.api.create("kettle", f"127.0.0.1:{server.port}", listen="127.0.0.1:0")
        self.assertNotEqual(proxy.listen_port, 0)
        self.assertEqual((proxy.enabled, proxy.fields["toxics"]), (True, []))
        self.assertEqual(list(self.api.proxies()), ["kettle"])
        data, end = fetch(proxy.listen_port)
        self.assertEqual((data, end), fetch(server.port))
        self.assertEqual(end, "closed")
        self.assertTrue(data)
        proxy.delete()
        self.assertTrue(refused(proxy.listen_port))
        with self.assertRaises(ToxiproxyError) as raised:
            self.api.get("kettle")
        self.assertEqual(raised.exception.status, 404)

    def test_limit_data_truncates_downstream(self):
        proxy = self.api.create("poem", upstream(self))
        self.assertEqual(fetch(proxy.listen_port), (POEM, "closed"))
        toxic = proxy.add_toxic("limit_data", bytes=100)
        self.assertEqual(
            (toxic["name"], toxic["stream"], toxic["toxicity"]), ("limit_data_downstream", "downstream", 1.0)
        )
        self.assertEqual(fetch(proxy.listen_port), (POEM[:100], "closed"))

    def test_limit_data_upstream_cuts_what_the_client_sends(self):
        recorder = Recorder()
        self.addCleanup(recorder.close)
        proxy = self.api.create("record", f"127.0.0.1:{recorder.port}")
        proxy.add_toxic("limit_data", stream="upstream", bytes=10)
        with connect(proxy.listen_port, send=b"0123456789abcdefghij") as sock:
            read_to_end(sock)
        deadline = time.monotonic() + DEADLINE
        while not recorder.received and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(recorder.received, [b"0123456789"])

    def test_reset_peer_resets(self):
        proxy = self.api.create("poem", upstream(self))
        proxy.add_toxic("reset_peer", timeout=0)
        _, end = fetch(proxy.listen_port)
        self.assertEqual(end, "Connection reset by peer")

    def test_timeout_0_holds_an_open_connection_until_it_is_removed(self):
        proxy = self.api.create("echo", upstream(self, EchoServer))
        with connect(proxy.listen_port, timeout=DEADLINE) as sock:
            sock.sendall(b"one")
            self.assertEqual(receive(sock, 3), b"one")
            proxy.add_toxic("timeout", timeout=0)  # on the open connection
            sock.sendall(b"two")
            sock.settimeout(0.3)  # held: nothing comes back, and the connection stays open
            with self.assertRaises(TimeoutError):
                sock.recv(100)
            proxy.remove_toxic("timeout_downstream")
            sock.settimeout(DEADLINE)
            sock.sendall(b"three")
            got = b""
            while not got.endswith(b"three") and (chunk := sock.recv(100)):
                got += chunk
        self.assertTrue(got.endswith(b"three"), got)  # "two" was held, or dropped as toxiproxy drops it

    def test_a_disabled_relay_refuses_clients_and_drops_the_open_ones(self):
        stalling = StallingServer(b"hello")
        self.addCleanup(stalling.close)
        proxy = self.api.create("stall", f"127.0.0.1:{stalling.port}")
        with connect(proxy.listen_port) as sock:
            self.assertEqual(receive(sock, 5), b"hello")
            proxy.disable()
            self.assertIs(proxy.enabled, False)
            data, end = read_to_end(sock)  # dropped: an end, well before the deadline
        self.assertEqual(data, b"")
        self.assertIn(end, ("closed", "Connection reset by peer"))
        self.assertTrue(refused(proxy.listen_port))
        proxy.enable()
        with connect(proxy.listen_port) as sock:
            self.assertEqual(receive(sock, 5), b"hello")

    def test_reset_enables_every_relay_and_removes_every_toxic(self):
        proxy = self.api.create("poem", upstream(self))
        proxy.add_toxic("limit_data", bytes=5)
        proxy.add_toxic("latency", stream="upstream", latency=10)
        proxy.disable()
        self.api.reset()
        shown = proxy.refresh()
        self.assertEqual((shown.enabled, shown.fields["toxics"]), (True, []))
        self.assertEqual(fetch(proxy.listen_port), (POEM, "closed"))

    def test_toxicity_0_spares_every_connection_and_1_none(self):
        proxy = self.api.create("poem", upstream(self))
        proxy.add_toxic("limit_data", toxicity=0, bytes=10)
        self.assertEqual([len(fetch(proxy.listen_port)[0]) for _ in range(3)], [len(POEM)] * 3)
        proxy.update_toxic("limit_data_downstream", toxicity=1)
        self.assertEqual([len(fetch(proxy.listen_port)[0]) for _ in range(3)], [10] * 3)

    def test_refusals_over_real_http(self):
        proxy = self.api.create("poem", upstream(self))
        for call, status in [
            (lambda: self.api.create("poem", "127.0.0.1:1"), 409),
            (lambda: self.api.get("nope"), 404),
            (lambda: proxy.add_toxic("gremlin"), 400),
            (lambda: self.api.request("POST", "/proxies", "not an object"), 400),
            (lambda: self.api.request("DELETE", "/reset"), 405),
        ]:
            with self.assertRaises(ToxiproxyError) as raised:
                call()
            self.assertEqual(raised.exception.status, status)

    def test_a_listen_address_in_use_is_500_as_toxiproxy_answers_it(self):
        taken = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(taken.close)
        with self.assertRaises(ToxiproxyError) as raised:
            self.api.create("clash", upstream(self), listen=f"127.0.0.1:{taken.getsockname()[1]}")
        self.assertEqual(raised.exception.status, 500)

    def test_an_oversized_body_is_refused_and_the_api_goes_on(self):
        port = int(self.api.url.rsplit(":", 1)[1])
        with connect(port) as sock:
            sock.sendall(b"POST /populate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 * MAX_BODY))
            sock.sendall(b"[" * 65536)
            answer, _ = read_to_end(sock)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertEqual(json.loads(answer.partition(b"\r\n\r\n")[2])["status"], 413)
        self.assertEqual(self.api.proxies(), {})

    def test_populate_creates_and_keeps(self):
        one = {"name": "one", "listen": "127.0.0.1:0", "upstream": upstream(self)}
        created = self.api.populate([one])
        self.assertEqual([proxy.name for proxy in created], ["one"])
        self.assertEqual(fetch(created[0].listen_port), (POEM, "closed"))
        again = self.api.populate([{**one, "listen": created[0].listen}])
        self.assertEqual(again[0].listen, created[0].listen)


def fates(case, seed: str) -> list[bool]:
    """Whether each of 16 connections met a limit_data of toxicity 0.5, in a fresh run with ``seed``."""
    child, api = start_faults(case, "--seed", seed)
    proxy = api.create("poem", upstream(case))
    proxy.add_toxic("limit_data", toxicity=0.5, bytes=10)
    met = [fetch(proxy.listen_port)[0] == POEM[:10] for _ in range(16)]
    child.stop()
    return met


class UserSpaceRelayThroughApiTests(RelayThroughApiTests):
    """The same, every byte through user space (``--no-splice``): the path that serves where
    splice(2) cannot (another system, an older Python), run here too."""

    def setUp(self):
        self.child, self.api = start_faults(self, "--no-splice")

    def test_the_start_up_says_which_path_moves_the_bytes(self):
        self.assertEqual(
            self.child.out.next_line(DEADLINE).strip(),
            "The relay copies every byte in user space: turned off (--no-splice)",
        )
        if sys.platform.startswith("linux") and hasattr(os, "splice"):
            child, _ = start_faults(self)
            self.assertIn("move in the kernel (splice)", child.out.next_line(DEADLINE))


class SeedTests(SynchronousTestCase):
    """``--seed``: the same connection numbers meet the same fates on every run."""

    def test_two_runs_with_one_seed_meet_the_same_fates(self):
        first, second = fates(self, "7"), fates(self, "7")
        self.assertEqual(first, second)
        self.assertTrue(any(first) and not all(first), first)  # the toxicity is really a share


class CommandTests(SynchronousTestCase):
    """The command's start, its one-line errors and its stop."""

    def test_config_populates_before_the_api_answers(self):
        path = temp_dir(self) + "/toxiproxy.json"
        with open(path, "w") as f:
            json.dump([{"name": "poem", "listen": "127.0.0.1:0", "upstream": upstream(self)}], f)
        _, api = start_faults(self, "--config", path)
        proxy = api.get("poem")
        self.assertEqual(fetch(proxy.listen_port), (POEM, "closed"))

    def test_a_bad_config_is_one_line_and_status_2(self):
        path = temp_dir(self) + "/bad.json"
        for content in ["{not json", '{"name": "x"}', '[{"name": "x"}]']:
            with open(path, "w") as f:
                f.write(content)
            done = run("poetrynow", "faults", "--api", "127.0.0.1:0", "--config", path)
            self.assertEqual((done.returncode, done.stdout), (2, ""), done.stderr)
            self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
            self.assertTrue(done.stderr.startswith("poetrynow faults: error: "), done.stderr)

    def test_an_api_port_in_use_is_one_line_and_status_1(self):
        taken = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(taken.close)
        done = run("poetrynow", "faults", "--api", f"127.0.0.1:{taken.getsockname()[1]}")
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertRegex(done.stderr, r"^poetrynow faults: error: cannot listen on 127\.0\.0\.1:\d+: .+\n$")

    def test_a_bad_api_address_is_a_usage_error(self):
        for bad in ["127.0.0.1:99999", "::1:80", ":80", "host:port"]:
            done = run("poetrynow", "faults", "--api", bad)
            self.assertEqual(done.returncode, 2, bad)
            self.assertEqual(len(done.stderr.strip().splitlines()[-1:]), 1)
            self.assertNotIn("Traceback", done.stderr)

    def test_sigterm_stops_it_with_one_line(self):
        child, api = start_faults(self)
        api.create("poem", upstream(self))
        status = child.stop(signal.SIGTERM)
        self.assertEqual(status, 128 + signal.SIGTERM)
        self.assertEqual(child.stderr, "poetrynow faults: stopped by SIGTERM: 1 relay and the API stopped\n")
