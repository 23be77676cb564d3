"""The HTTP toxics' parts on their own: the framer over every split of real messages, and each
stage on a task.Clock (what goes on, and when), without sockets."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from poetrynow.relay.httpattributes import answer_bytes
from poetrynow.relay.httpframe import MAX_HEAD, Framer, Malformed, NotHttp
from poetrynow.relay.httptoxics import HTTP_STAGES
from poetrynow.relay.kinds import stage_attributes
from poetrynow.relay.toxics import make_toxic
from tests.test_relay_toxics import Hooks, Received
from tests.time_limit import SynchronousTestCase

REQUESTS = (
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n"
    b"\r\nGET /keep HTTP/1.0\r\n\r\n"
)
RESPONSES = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    b"HTTP/1.1 204 No Content\r\n\r\n"
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\n\r\nto the end of the stream"
)


def fed(framer: Framer, data: bytes, asked: list[bytes] | None = None) -> list:
    """``data`` through ``framer``, each head asked about as a stage would: by ``asked``'s methods."""
    events = framer.feed(data)
    while framer.state == "asking":
        events += framer.carry_on(asked.pop(0) if asked else None)
    return events


def frame(requests: bool, data: bytes, cuts: list[int], asked: list[bytes] | None = None) -> list:
    framer, events = Framer(requests), []
    at = 0
    for cut in sorted(cuts) + [len(data)]:
        events += fed(framer, data[at:cut], asked)
        at = max(at, cut)
    events += framer.eof()
    merged: list[tuple[str, bytes]] = []
    for kind, value in events:
        raw = value.raw if kind == "head" else (value or b"")
        if merged and kind == merged[-1][0] == "body":
            merged[-1] = ("body", merged[-1][1] + raw)
        else:
            merged.append((kind, raw))
    return merged


class FramerTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, len(REQUESTS)), max_size=12))
    def test_requests_are_framed_alike_however_they_are_cut(self, cuts):
        events = frame(True, REQUESTS, cuts)
        self.assertEqual(b"".join(raw for _, raw in events), REQUESTS)  # every byte, untouched
        self.assertEqual([kind for kind, _ in events], ["head", "end", "head", "body", "end"] * 1
                         + ["head", "body", "end", "head", "end"])  # fmt: skip

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, len(RESPONSES)), max_size=12))
    def test_responses_are_framed_alike_however_they_are_cut(self, cuts):
        events = frame(False, RESPONSES, cuts)
        self.assertEqual(b"".join(raw for _, raw in events), RESPONSES)
        kinds = [kind for kind, _ in events]
        with_body = ["head", "body", "end"]
        self.assertEqual(kinds, ["head", "end", *with_body] + ["head", "end"] * 2 + with_body * 2)
        self.assertEqual(kinds.count("end"), 6)  # 100, 200, 204, 304 (no body, whatever it says), 200, 200

    def test_a_byte_at_a_time_is_framed_alike(self):
        for requests, data in ((True, REQUESTS), (False, RESPONSES)):
            with self.subTest(requests=requests):
                self.assertEqual(frame(requests, data, list(range(len(data)))), frame(requests, data, []))

    def test_what_is_not_http_says_so_from_its_first_bytes(self):
        for requests, data in ((True, b"\x16\x03\x01"), (True, b"SSH-2.0-x\r\n"), (False, b"SSH-2.0"),
                               (False, b"A poem\n"), (True, b"x" * 20)):  # fmt: skip
            with self.subTest(data=data), self.assertRaises(NotHttp):
                fed(Framer(requests), data)
        self.assertEqual(Framer(False).feed(b"HTT"), [])  # (it may yet be)

    def test_bounds_and_breaks_are_malformed(self):
        cases = [
            (True, b"GET / HTTP/1.1\r\nX: " + b"a" * 9000),
            (True, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEAD // 6 + 1)),
            (True, b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            (True, b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            (True, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"),
            (True, b"GET /\r\n\r\n"),
            (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            (False, b"HTTP/1.1 2000 OK\r\n\r\n"),
        ]
        for requests, data in cases:
            with self.subTest(data=data[:40]), self.assertRaises(Malformed):
                fed(Framer(requests), data)
        for smuggled in (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                         b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"):  # fmt: skip
            with self.subTest(data=smuggled[:40]), self.assertRaises(Malformed):
                fed(Framer(True), smuggled)  # (read two ways by two peers: refused)
        framer = Framer(True)
        fed(framer, b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab")
        with self.assertRaises(Malformed):
            framer.eof()  # (cut short)

    def test_a_tunnel_or_a_switched_protocol_is_bytes_after_its_head(self):
        events = frame(False, b"HTTP/1.1 101 Switching\r\n\r\n\x81\x05hello", [])
        self.assertEqual([kind for kind, _ in events], ["head", "end", "raw"])
        tunnel = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01"
        self.assertEqual([kind for kind, _ in frame(False, tunnel, [], [b"CONNECT"])], ["head", "end", "raw"])
        to_its_end = frame(False, tunnel, [], [b"GET"])  # (the same to a GET: a body to the stream's end)
        self.assertEqual([kind for kind, _ in to_its_end], ["head", "body", "end"])

    def test_a_malformed_head_loses_none_of_what_came_before_it(self):
        framer = Framer(True)
        fed(framer, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
        with self.assertRaises(Malformed) as raised:
            framer.feed(b"hino colon here\r\n\r\n")
        self.assertEqual(raised.exception.events, [("body", b"hi"), ("end", None)])  # (framed before it)
        self.assertEqual(bytes(framer.buffer), b"no colon here\r\n\r\n")  # (and it, still held)

    def test_after_an_upgrade_request_the_requests_wait_for_its_answer(self):
        upgrade = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
        for answer, kinds in ((True, ["raw"]), (False, ["head", "end"])):
            with self.subTest(switched=answer):
                framer = Framer(True)
                events = fed(framer, upgrade + b"GET / HTTP/1.1\r\n")
                self.assertEqual([kind for kind, _ in events], ["head", "end"])
                self.assertEqual(fed(framer, b"\r\n"), [])  # (held: HTTP still, or a new protocol?)
                events = framer.resolve(answer)
                while framer.state == "asking":
                    events += framer.carry_on(None)
                self.assertEqual([kind for kind, _ in events], kinds)
                self.assertEqual(b"".join(v.raw if k == "head" else v or b"" for k, v in events),
                                 b"GET / HTTP/1.1\r\n\r\n")  # fmt: skip

    def test_a_response_to_head_has_no_body_whatever_it_says(self):
        responses = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        responses += b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        events = frame(False, responses, [], [b"HEAD", b"GET"])
        self.assertEqual([kind for kind, _ in events], ["head", "end", "head", "body", "end"])

    def test_blank_lines_before_a_request_and_bare_line_feeds(self):
        events = frame(True, b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [])
        self.assertEqual([kind for kind, _ in events], ["head", "end"])  # (blank lines before: allowed)
        events = frame(True, b"GET / HTTP/1.1\nA: b\n\nGET /2 HTTP/1.1\r\n\r\n", [])
        self.assertEqual([kind for kind, _ in events], ["head", "end", "head", "end"])  # (the first \n\n)
        self.assertEqual(events[0][1], b"GET / HTTP/1.1\nA: b\n\n")
        with self.assertRaises(Malformed):
            fed(Framer(True), b"\r\n" * 5000)  # (blank lines without end are bounded too)


class Hooked(Hooks):
    def __init__(self):
        super().__init__()
        self.replies: list[bytes] = []
        self.faults: list[tuple[str, bool]] = []

    def answer(self, asked, data, code):
        self.replies.append(data)

    def framer_after(self, stage):
        return None

    def leave(self, stage):
        self.left = stage

    def http_fault(self, why, malformed):
        self.faults.append((why, malformed))


class StageTests(SynchronousTestCase):
    def stage(self, kind: str, stream: str = "downstream", toxicity: float = 1.0, **attributes):
        toxic = make_toxic({"type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes})
        self.hooks = Hooked()
        self.received = Received(self.hooks.clock)
        stage = HTTP_STAGES[kind](self.hooks, stage_attributes(toxic), random.Random(7))
        stage.next = self.received
        return stage

    RESPONSE = b"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 4\r\n\r\nbody"

    def test_latency_holds_each_response_and_none_overtakes(self):
        stage = self.stage("http_latency", latency=300)
        stage.write(self.RESPONSE)
        self.assertEqual(self.received.events, [])
        self.assertEqual(stage.held, len(self.RESPONSE))  # (counted against the direction's limit)
        self.hooks.clock.advance(0.1)
        stage.write(self.RESPONSE)  # the next: 0.3 s from its own head, not after the first's wait
        self.hooks.clock.advance(0.2)
        self.assertEqual(self.received.data(), self.RESPONSE)
        self.hooks.clock.advance(0.05)
        self.assertEqual(self.received.data(), self.RESPONSE)
        self.hooks.clock.advance(0.05)
        self.assertEqual(self.received.data(), self.RESPONSE * 2)
        fast = self.stage("http_latency", latency=300, jitter=0)
        fast.retune({**fast.attributes, "latency": 0})  # an update: the next message meets the new value
        fast.write(self.RESPONSE)
        self.assertEqual(self.received.data(), self.RESPONSE)
        self.assertEqual(stage.held, 0)

    def test_slow_headers_sends_a_line_at_a_time(self):
        stage = self.stage("http_slow_headers", delay=100)
        stage.write(self.RESPONSE)
        times = [round(t, 3) for t, _ in self.received.events]
        self.hooks.clock.pump([0.1] * 5)
        times = [round(t, 3) for t, data in self.received.events if data]
        self.assertEqual(times[:4], [0.0, 0.1, 0.2, 0.3])  # the status line, A, Content-Length, the blank
        self.assertEqual(self.received.data(), self.RESPONSE)

    def test_slow_body_sends_headers_at_once_and_the_body_at_its_rate(self):
        stage = self.stage("http_slow_body", rate=1)  # 1 KB/s: 100 bytes a tenth of a second
        body = b"b" * 1000
        stage.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + body)
        self.assertTrue(self.received.events[0][1].endswith(b"\r\n\r\n"))  # the headers, at once
        self.hooks.clock.pump([0.1] * 10)
        sent = [(round(t, 2), len(data)) for t, data in self.received.events[1:] if data]
        self.assertEqual(sent, [(round(n * 0.1, 2), 100) for n in range(10)])

    def test_slow_body_keeps_its_pace_after_a_stall(self):
        stage = self.stage("http_slow_body", rate=1)
        stage.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"b" * 1000)
        self.hooks.clock.advance(0.1)
        self.hooks.full = True  # (the client stops reading for a second)
        self.hooks.clock.pump([0.1] * 10)
        self.hooks.full = False
        stage.resume()
        self.hooks.clock.pump([0.1] * 10)
        sent = [(round(t, 2), len(data)) for t, data in self.received.events[1:] if data]
        self.assertEqual(sent[:2], [(0.0, 100), (0.1, 100)])
        self.assertEqual([at for at, _ in sent[2:5]], [1.1, 1.2, 1.3])  # the same pace, no burst

    def test_status_answers_head_without_a_body(self):
        stage = self.stage("http_status", stream="upstream", code=503, body="no")
        stage.write(b"HEAD / HTTP/1.1\r\n\r\n")
        answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n"  # (its length, no body)
        self.assertEqual(self.hooks.replies, [answer])

    def test_status_answers_a_request_itself(self):
        stage = self.stage("http_status", stream="upstream", code=503, body="no", headers={"X": "y"})
        stage.write(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(self.received.events, [])  # none of it upstream
        self.assertEqual(
            self.hooks.replies, [b"HTTP/1.1 503 Service Unavailable\r\nX: y\r\nContent-Length: 2\r\n\r\nno"]
        )
        self.assertEqual(
            answer_bytes({"code": 299, "body": "", "headers": {}})[:20], b"HTTP/1.1 299 Fault\r\n"
        )

    def test_toxicity_draws_per_message(self):
        stage = self.stage("http_status", stream="upstream", toxicity=0.5)
        for _ in range(40):
            stage.write(b"GET / HTTP/1.1\r\n\r\n")
        answered, passed = len(self.hooks.replies), self.received.data().count(b"GET /")
        self.assertEqual(answered + passed, 40)
        self.assertTrue(answered and passed, (answered, passed))

    def test_drop_after_headers_or_the_request(self):
        stage = self.stage("http_drop", after="headers")
        stage.write(self.RESPONSE)
        self.assertEqual((self.received.data(), self.hooks.fin_closes), (self.RESPONSE[:-4], True))
        self.assertIsNone(self.received.events[-1][1])  # a FIN after the headers, which closes it
        stage = self.stage("http_drop", stream="upstream", after="request")
        stage.write(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nh")
        self.assertFalse(self.hooks.closed)  # not whole yet
        stage.write(b"i")
        self.assertEqual((self.received.data(), self.hooks.fin_closes), (b"", True))

    def test_not_http_passes_untouched_and_malformed_is_reported(self):
        stage = self.stage("http_latency", latency=1000)
        stage.write(b"A poem, not a response")
        stage.write(b", and more of it")
        self.assertEqual(self.received.data(), b"A poem, not a response, and more of it")  # at once
        self.assertEqual([malformed for _, malformed in self.hooks.faults], [False])
        stage = self.stage("http_latency", latency=1000)
        stage.write(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n")
        self.assertEqual([malformed for _, malformed in self.hooks.faults], [True])

    def test_a_toxic_that_joins_mid_message_passes_that_connection_untouched(self):
        stage = self.stage("http_latency", latency=1000)
        stage.joined = True  # (its direction had carried bytes: this is the middle of a body)
        stage.write(b"the rest of a body, not a message")
        self.assertEqual(self.received.data(), b"the rest of a body, not a message")
        self.assertEqual([malformed for _, malformed in self.hooks.faults], [None])  # the relay not marked
        stage = self.stage("http_latency", latency=1000)
        stage.joined = True
        stage.write(self.RESPONSE)  # (at a boundary after all: it acts)
        self.assertEqual(self.received.events, [])

    def test_a_full_writer_stalls_it_and_a_removal_hands_back_what_it_held(self):
        stage = self.stage("http_latency", latency=100)
        stage.write(self.RESPONSE)
        self.hooks.full = True
        self.hooks.clock.advance(0.2)
        self.assertEqual(self.received.events, [])
        self.hooks.full = False
        stage.resume()
        self.assertEqual(self.received.data(), self.RESPONSE)
        stage.write(self.RESPONSE)
        stage.finish()
        chunks, finishing = stage.detach()
        self.assertEqual((b"".join(chunks), finishing), (self.RESPONSE, True))
        self.assertEqual(self.hooks.clock.getDelayedCalls(), [])
