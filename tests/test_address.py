from poetrynow.address import Address, AddressError, parse_address
from tests.time_limit import SynchronousTestCase


class ParseAddressTests(SynchronousTestCase):
    def test_bare_port_means_loopback(self):
        self.assertEqual(parse_address("10000"), Address("127.0.0.1", 10000))

    def test_host_and_port(self):
        self.assertEqual(parse_address("localhost:10001"), Address("localhost", 10001))

    def test_bracketed_ipv6(self):
        address = parse_address("[::1]:10002")
        self.assertEqual(address, Address("::1", 10002))
        self.assertEqual(str(address), "[::1]:10002")

    def test_str_is_host_colon_port(self):
        self.assertEqual(str(parse_address("10000")), "127.0.0.1:10000")

    def test_surrounding_spaces_ignored(self):
        self.assertEqual(parse_address(" 7 "), Address("127.0.0.1", 7))

    def test_rejects(self):
        for text in ["", "abc", "host:", ":80", "65536", "-1", "1.5", "::1:80", "[::1]80", "[::1", "h:p"]:
            with self.subTest(text=text):
                self.assertRaises(AddressError, parse_address, text)

    def test_error_names_the_input(self):
        error = self.assertRaises(AddressError, parse_address, "nonsense")
        self.assertIn("'nonsense'", str(error))

    def test_port_zero_and_non_ascii_digits_are_rejected(self):
        for text in ["0", "localhost:0", "[::1]:0", "\u0661\u0660\u0660\u0660\u0660", "tcp:localhost:0"]:
            with self.subTest(text=text):
                self.assertRaises(AddressError, parse_address, text)

    def test_client_endpoints(self):
        self.assertEqual(parse_address("tcp:localhost:10000"), Address("localhost", 10000))
        self.assertEqual(parse_address("tcp:host=\\:\\:1:port=10000"), Address("::1", 10000))
        unix = parse_address("unix:/tmp/poetry.sock")
        self.assertEqual((unix.endpoint, unix.tcp), ("unix:/tmp/poetry.sock", False))
        self.assertEqual(str(unix), "unix:/tmp/poetry.sock")
        for text in ["tcp:10000", "unix:", "tcp:host:"]:
            with self.subTest(text=text):
                self.assertRaises(AddressError, parse_address, text)
