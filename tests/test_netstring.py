from hypothesis import given, settings
from hypothesis import strategies as st

from poetrynow.netstring import NetstringDecoder, NetstringError, encode
from tests.time_limit import SynchronousTestCase


class NetstringTests(SynchronousTestCase):
    def test_encode(self):
        self.assertEqual(encode(b"hello"), b"5:hello,")
        self.assertEqual(encode(b""), b"0:,")

    def test_decode_in_pieces(self):
        decoder = NetstringDecoder()
        self.assertEqual(decoder.feed(b"1"), [])
        self.assertEqual(decoder.feed(b"1:cummingsi"), [])
        self.assertTrue(decoder.pending)
        self.assertEqual(decoder.feed(b"fy,3:abc,"), [b"cummingsify", b"abc"])
        self.assertFalse(decoder.pending)

    def test_rejects(self):
        for bad in [b"x:", b":abc,", b"01:a,", b"3:abcd", b"-1:", b"3 :abc,", b"9999999999"]:
            with self.subTest(bad=bad):
                self.assertRaises(NetstringError, NetstringDecoder().feed, bad)

    def test_over_long_is_refused_before_the_payload_arrives(self):
        decoder = NetstringDecoder(max_length=10)
        self.assertRaises(NetstringError, decoder.feed, b"11:")
        self.assertRaises(NetstringError, NetstringDecoder(max_length=10).feed, b"123")

    def test_exactly_the_limit_is_fine(self):
        self.assertEqual(NetstringDecoder(max_length=3).feed(b"3:abc,"), [b"abc"])

    def test_broken_decoder_stays_broken(self):
        decoder = NetstringDecoder()
        self.assertRaises(NetstringError, decoder.feed, b"x")
        self.assertRaises(NetstringError, decoder.feed, b"1:a,")


class NetstringPropertyTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=200), st.integers(min_value=0, max_value=300))
    def test_random_bytes_raise_only_netstring_errors(self, data, max_length):
        decoder = NetstringDecoder(max_length)
        try:
            for payload in decoder.feed(data):
                self.assertLessEqual(len(payload), max_length)
        except NetstringError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=100), max_size=8), st.data())
    def test_round_trip_in_any_split(self, payloads, data):
        stream = b"".join(encode(p) for p in payloads)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        decoder = NetstringDecoder(max_length=100)
        out, start = [], 0
        for cut in cuts + [len(stream)]:
            out += decoder.feed(stream[start:cut])
            start = cut
        self.assertEqual(out, payloads)
        self.assertFalse(decoder.pending)
