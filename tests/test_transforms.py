"""The transform server's protocol through StringTransport, and TransformProxy for real."""

from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs

from poetrynow.clients.get_poetry import TransformFailed, TransformProxy
from poetrynow.netstring import encode
from poetrynow.servers.transform.server import TransformFactory, TransformService
from poetrynow.transforms import TransformError, apply, backwards, cummingsify
from tests.time_limit import SynchronousTestCase, TestCase
from tests.twisted_support import TEST_POEM, listen


class TransformFunctionTests(SynchronousTestCase):
    def test_cummingsify_lower_cases(self):
        self.assertEqual(cummingsify("The Quick ÉCLAIR"), "the quick éclair")

    def test_backwards(self):
        self.assertEqual(backwards("a\nb\nc\n"), "c\nb\na\n")

    def test_apply_by_name_on_bytes(self):
        self.assertEqual(apply("shout", "ça\n".encode()), "ÇA\n".encode())

    def test_apply_failures(self):
        self.assertRaises(TransformError, apply, "nope", b"poem")
        self.assertRaises(TransformError, apply, "explode", b"poem")
        self.assertRaises(TransformError, apply, "cummingsify", b"\xff\xfe")


class TransformProtocolTests(SynchronousTestCase):
    def connect(self, max_length=1 << 20, timeout=60.0):
        self.clock = task.Clock()
        factory = TransformFactory(TransformService(max_length=max_length), timeout=timeout, clock=self.clock)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_good_request_gets_one_netstring_and_a_close(self):
        protocol, transport = self.connect()
        with capturedLogs() as logs:
            protocol.dataReceived(encode(b"cummingsify." + TEST_POEM))
        self.assertEqual(transport.value(), encode(TEST_POEM.decode().lower().encode()))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(logs), 1)

    def test_what_follows_the_request_is_dropped(self):
        # A telnet user's newline after the request, in the same read: the request is answered.
        protocol, transport = self.connect()
        protocol.dataReceived(encode(b"shout.abc") + b"\r\n")
        protocol.dataReceived(b"more\r\n")
        self.assertEqual(transport.value(), b"3:ABC,")
        self.assertTrue(transport.disconnecting)

    def test_a_fin_before_the_request_is_whole_is_a_refusal(self):
        protocol, transport = self.connect()
        with capturedLogs() as logs:
            protocol.dataReceived(b"9:shout")
            protocol.readConnectionLost()  # the client half-closed: the rest will never come
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(
            [e["why"] for e in logs], ["the client closed its side before its request was whole"]
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])  # no request timeout left running

    def test_request_byte_by_byte(self):
        protocol, transport = self.connect()
        for byte in encode(b"shout.abc"):
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(transport.value(), b"3:ABC,")

    def test_bad_requests_close_without_an_answer_and_log_one_line(self):
        cases = {
            "no dot": encode(b"cummingsify poem"),
            "unknown transform": encode(b"sonnetify.poem"),
            "transform raises": encode(b"explode.poem"),
            "malformed": b"12x:",
            "over-long": b"99999:",
            "missing comma": b"3:a.bX",
        }
        for label, request in cases.items():
            with self.subTest(label):
                protocol, transport = self.connect(max_length=1000)
                with capturedLogs() as logs:
                    protocol.dataReceived(request)
                    protocol.dataReceived(b"more bytes after the error are ignored")
                self.assertEqual(transport.value(), b"")
                self.assertTrue(transport.disconnecting)
                self.assertEqual(len(logs), 1)
                self.assertTrue(logs[0]["log_format"].startswith("Refused"))

    def test_no_request_times_out(self):
        _protocol, transport = self.connect(timeout=5)
        with capturedLogs() as logs:
            self.clock.advance(4.9)
            self.assertFalse(transport.disconnecting)
            self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(logs), 1)


class TransformProxyTests(TestCase):
    def setUp(self):
        self.port = listen(self, TransformFactory(TransformService()))

    def test_xform(self):
        d = TransformProxy("127.0.0.1", self.port).xform("cummingsify", b"HELLO World")
        return d.addCallback(self.assertEqual, b"hello world")

    def test_failed_transform_fails_the_deferred(self):
        d = TransformProxy("127.0.0.1", self.port).xform("explode", b"poem")
        return self.assertFailure(d, TransformFailed)

    @defer.inlineCallbacks
    def test_server_keeps_serving_after_bad_requests(self):
        proxy = TransformProxy("127.0.0.1", self.port)
        yield self.assertFailure(proxy.xform("nope", b"x"), TransformFailed)
        result = yield proxy.xform("shout", b"still here")
        self.assertEqual(result, b"STILL HERE")
