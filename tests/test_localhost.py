"""``localhost`` either way: servers and clients meet whatever order the resolver gives.

Over 300 lines because one portability promise is tested here whole: the namespace
harness, every command and engine with ::1 first, and the unit cases of listening
and falling back.

On macOS, and on Linux hosts whose hosts file lists ``::1 localhost`` first,
``localhost`` is ``::1`` before ``127.0.0.1``; on others, such as this project's
development machine, it is ``127.0.0.1`` alone. The command tests here run the
real commands in a private mount namespace (``unshare -m``) whose ``/etc/hosts``
lists ``::1`` first, so the real resolver gives that order to every process,
uvloop's and Twisted's lookups included. Where namespaces are not allowed (not
root, no unshare) those tests skip, except in CI, where they must run. The unit
tests vary the order in-process instead, by standing in for ``getaddrinfo``.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from unittest import mock

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol

from poetrynow.address import Address, ConnectFailed, resolve
from poetrynow.clients import ENGINES
from poetrynow.clients.connect import open_blocking
from poetrynow.events import describe_error
from poetrynow.servers.common.listen import Where, listen, listen_on_each
from tests.support import Child, command, localhost_addrinfo, refusing_port, temp_dir
from tests.time_limit import SynchronousTestCase, TestCase

V6_FIRST = "::1 localhost\n127.0.0.1 localhost\n"
#: Set (as .ci/run does) to make these tests fail, not skip, where the namespace cannot be had.
REQUIRED = "POETRYNOW_REQUIRE_V6_FIRST"
IN_HOSTS = 'mount --bind "$0" /etc/hosts && exec "$@"'
PORT = re.compile(r" on port (\d+)\.$")


v6_first_addrinfo = localhost_addrinfo("::1", "127.0.0.1")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@functools.cache
def hosts_file() -> str:
    """A hosts file that lists ::1 first, for the namespaces (kept for the whole run)."""
    import atexit
    import tempfile

    directory = tempfile.mkdtemp(prefix="poetrynow-hosts-")
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, "hosts")
    with open(path, "w") as f:
        f.write(V6_FIRST)
    return path


@functools.cache
def why_no_namespace() -> str | None:
    """None when a command can run with ::1 first for localhost; else why it cannot."""
    if not has_ipv6_loopback():
        return "this host has no IPv6 loopback (::1)"
    if shutil.which("unshare") is None:
        return "no unshare command (util-linux)"
    probe = "import socket; print(socket.getaddrinfo('localhost', 0, type=socket.SOCK_STREAM)[0][4][0])"
    try:
        result = subprocess.run(
            ["unshare", "-m", "sh", "-c", IN_HOSTS, hosts_file(), sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as problem:
        return f"unshare -m failed: {problem}"
    if result.stdout.strip() != "::1":
        return f"unshare -m with a private /etc/hosts is not allowed here: {result.stderr.strip()[:200]}"
    return None


def in_v6_first(argv: list[str]) -> list[str]:
    """``argv`` run where the resolver lists ::1 first for localhost."""
    return ["unshare", "-m", "sh", "-c", IN_HOSTS, hosts_file(), *argv]


class NamespaceCase(SynchronousTestCase):
    """Runs the real commands with ::1 first; skips where that cannot be arranged, fails in CI."""

    def setUp(self):
        reason = why_no_namespace()
        if reason is not None:
            if os.environ.get(REQUIRED):
                self.fail(f"{REQUIRED} is set, so localhost must be tested with ::1 first, but {reason}")
            self.skipTest(reason)
        self.servers: list[Child] = []
        self.addCleanup(self.stop_servers)

    def start(self, name: str, *args: str, argv: list[str] | None = None) -> int:
        """Start a server command with ::1 first; the port from its listening line."""
        server = Child(in_v6_first((argv or command(name)) + list(args)), cwd=temp_dir(self))
        self.servers.append(server)
        # The servers print their line first; twistd logs it among its own.
        try:
            seen = server.out.until(lambda line: PORT.search(line.rstrip("\n")) is not None)
        except AssertionError as problem:
            server.stop(signal.SIGKILL)
            raise AssertionError(f"{name} did not say its port: {problem}") from None
        found = PORT.search(seen[-1].rstrip("\n"))
        assert found is not None
        return int(found.group(1))

    def stop_servers(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                server.process.terminate()
        for server in self.servers:
            server.stop()

    def run_v6_first(self, name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            in_v6_first(command(name) + list(args)),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def assert_poems(self, result: subprocess.CompletedProcess, count: int) -> None:
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr)
        s = "" if count == 1 else "s"
        self.assertIn(f"Got {count} poem{s} in", result.stdout)


class DemoTests(NamespaceCase):
    def test_the_demo_ranks_both_engines_three_of_three(self):
        result = self.run_v6_first("poetrynow", "demo", "--delay", "0.01", "--no-timeline", timeout=120)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        ranked = [line for line in result.stdout.splitlines() if line.strip()[:1] in ("1", "2")]
        self.assertEqual(len(ranked), 2, result.stdout)
        for line in ranked:
            self.assertTrue(line.rstrip().endswith("3/3"), line)


SLOW = ("--num-bytes", "300", "--delay", "0.01", "--quiet")


class EngineTests(NamespaceCase):
    """Every engine, by port and as localhost:PORT, against every server on its default interface."""

    def test_every_engine_reaches_every_default_server_both_ways(self):
        ports = [
            self.start("slowpoetry", "kettle", *SLOW),
            self.start("slowpoetry", "relay", "--concurrent", *SLOW),
            self.start("fastpoetry", "lighthouse", "--quiet"),
        ]
        ports.append(self.start("poetry-proxy", f"localhost:{ports[2]}", "--quiet"))
        xform = self.start("transformedpoetry", "--quiet")
        addresses = [str(port) for port in ports] + [f"localhost:{port}" for port in ports]
        for engine, info in ENGINES.items():
            with self.subTest(engine=engine):
                extra = ["--xform", f"localhost:{xform}"] if "xform" in info.takes else []
                result = self.run_v6_first("get-poetry", "--engine", engine, *extra, *addresses)
                self.assert_poems(result, len(addresses))
                if extra:
                    self.assertNotIn("transform", result.stderr)  # every transform answered

    def test_the_transform_server_by_port(self):
        port = self.start("fastpoetry", "kettle", "--quiet")
        xform = self.start("transformedpoetry", "--quiet")
        for engine in ("threads", "twisted", "asyncio"):
            with self.subTest(engine=engine):
                result = self.run_v6_first("get-poetry", "--engine", engine, "--xform", str(xform), str(port))
                self.assert_poems(result, 1)
                self.assertEqual(result.stderr, "")

    def test_a_server_on_one_address_is_reached_as_localhost(self):
        for iface in ("::1", "127.0.0.1"):
            port = self.start("fastpoetry", "kettle", "--quiet", "--iface", iface)
            for engine in ENGINES:
                with self.subTest(iface=iface, engine=engine):
                    self.assert_poems(
                        self.run_v6_first("get-poetry", "--engine", engine, f"localhost:{port}"), 1
                    )

    def test_a_failure_names_each_address_tried(self):
        port = refusing_port(self)
        for engine in ENGINES:
            with self.subTest(engine=engine):
                result = self.run_v6_first("get-poetry", "--engine", engine, f"localhost:{port}")
                self.assertEqual(result.returncode, 1)
                self.assertIn("Connection refused (tried ::1, then 127.0.0.1)", result.stderr)
                self.assertNotIn("Traceback", result.stderr)


class TwistdTests(NamespaceCase):
    def twistd(self, plugin: str, *args: str) -> int:
        twistd = [sys.executable, "-c", "import sys; from twisted.scripts.twistd import run; run()"]
        return self.start(plugin, argv=twistd + ["-n", "--pidfile=", "--logfile=-", plugin, *args])

    def test_every_plugin_on_its_default_interface_is_reached_both_ways(self):
        fast = self.twistd("fastpoetry", "--poem", "kettle")
        slow = self.twistd("slowpoetry", "--poem", "relay", "--num-bytes", "300", "--delay", "0.01")
        proxy = self.twistd("poetryproxy", f"localhost:{fast}")
        xform = self.twistd("transformedpoetry")
        addresses = [str(fast), str(slow), str(proxy)]
        addresses += [f"localhost:{port}" for port in (fast, slow, proxy)]
        result = self.run_v6_first(
            "get-poetry", "--engine", "twisted", "--xform", f"localhost:{xform}", *addresses
        )
        self.assert_poems(result, len(addresses))
        self.assertEqual(result.stderr, "")


class ListenTests(SynchronousTestCase):
    """Where a server listens, with the resolver's order varied in-process."""

    def test_localhost_listens_on_each_address_and_on_127_0_0_1(self):
        if not has_ipv6_loopback():
            self.skipTest("this host has no IPv6 loopback (::1)")
        with mock.patch("socket.getaddrinfo", v6_first_addrinfo):
            socks = listen(Where(0, "localhost"))
        try:
            names = [sock.getsockname()[:2] for sock in socks]
            port = names[0][1]
            self.assertEqual(names, [("::1", port), ("127.0.0.1", port)])
        finally:
            for sock in socks:
                sock.close()

    def test_localhost_always_includes_the_address_a_bare_port_dials(self):
        with mock.patch("socket.getaddrinfo", localhost_addrinfo("::1")):
            self.assertEqual(Where(0, "localhost").addresses(), ["::1", "127.0.0.1"])
        with mock.patch("socket.getaddrinfo", localhost_addrinfo("127.0.0.1")):
            self.assertEqual(Where(0, "localhost").addresses(), ["127.0.0.1"])

    def test_port_zero_tries_again_when_the_port_is_taken_on_another_address(self):
        taken = {("b", 1000)}
        opened: list[tuple[str, int]] = []
        closed: list[tuple[str, int]] = []
        ports = iter([1000, 2000])

        def open_one(description: str):
            found = re.match(r"\w+:(\d+):interface=([^:]+)", description)
            assert found is not None
            port, interface = found.groups()
            chosen = int(port) or next(ports)
            if (interface, chosen) in taken:
                raise OSError(errno.EADDRINUSE, "Address already in use")
            opened.append((interface, chosen))
            return (interface, chosen)

        where = Where(0, "names")
        with mock.patch.object(Where, "addresses", lambda self: ["a", "b"]):
            got = listen_on_each(where, open_one, lambda listener: listener[1], closed.append)
        self.assertEqual(got, [("a", 2000), ("b", 2000)])
        self.assertEqual(closed, [("a", 1000)])

    def test_an_address_the_host_lacks_is_passed_over(self):
        def open_one(description: str):
            if "interface=a" in description:
                raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
            return description

        with mock.patch.object(Where, "addresses", lambda self: ["a", "b"]):
            got = listen_on_each(Where(5, "names"), open_one, lambda listener: 5, lambda listener: None)
        self.assertEqual(len(got), 1)
        self.assertIn("interface=b", got[0])

    def test_a_fixed_port_taken_on_one_address_is_an_error(self):
        def open_one(description: str):
            if "interface=b" in description:
                raise OSError(errno.EADDRINUSE, "Address already in use")
            return description

        closed: list = []
        with mock.patch.object(Where, "addresses", lambda self: ["a", "b"]), self.assertRaises(OSError):
            listen_on_each(Where(5, "names"), open_one, lambda listener: 5, closed.append)
        self.assertEqual(len(closed), 1)


class FallbackTests(TestCase):
    """Clients try each address a name resolves to, in order, with the order varied in-process."""

    def setUp(self):
        if not has_ipv6_loopback():
            self.skipTest("this host has no IPv6 loopback (::1)")
        # 127.0.0.1 listens; ::1 refuses, held so that no other test listens there meanwhile.
        self.port = refusing_port(self, listen_on="127.0.0.1")
        patcher = mock.patch("socket.getaddrinfo", v6_first_addrinfo)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_resolve_keeps_the_resolvers_order(self):
        self.assertEqual(resolve(Address("localhost", 7)), [Address("::1", 7), Address("127.0.0.1", 7)])
        self.assertEqual(resolve(Address("::1", 7)), [Address("::1", 7)])

    def test_the_blocking_connect_falls_back(self):
        with open_blocking(Address("localhost", self.port), timeout=5) as sock:
            self.assertEqual(sock.getpeername()[:2], ("127.0.0.1", self.port))

    def test_the_blocking_connect_names_what_it_tried(self):
        with self.assertRaises(ConnectFailed) as caught:
            open_blocking(Address("localhost", refusing_port(self)), timeout=5)
        self.assertEqual(describe_error(caught.exception), "Connection refused (tried ::1, then 127.0.0.1)")
        self.assertEqual(caught.exception.errno, errno.ECONNREFUSED)

    def test_different_reasons_are_named_one_by_one(self):
        failed = ConnectFailed([("::1", "Network is unreachable"), ("127.0.0.1", "Connection refused")])
        self.assertEqual(str(failed), "::1: Network is unreachable; 127.0.0.1: Connection refused")

    @defer.inlineCallbacks
    def test_the_twisted_endpoint_falls_back(self):
        from twisted.internet import reactor

        from poetrynow.clients.endpoint import FallbackEndpoint, client_endpoint

        endpoint = client_endpoint(reactor, Address("localhost", self.port), timeout=5)
        self.assertIsInstance(endpoint, FallbackEndpoint)
        protocol = yield endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(protocol.transport.getPeer().host, "127.0.0.1")
        protocol.transport.abortConnection()

    @defer.inlineCallbacks
    def test_the_twisted_endpoint_names_what_it_tried(self):
        from twisted.internet import reactor

        from poetrynow.clients.endpoint import client_endpoint, describe_failure

        endpoint = client_endpoint(reactor, Address("localhost", refusing_port(self)), timeout=5)
        with self.assertRaises(ConnectFailed) as caught:
            yield endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(describe_failure(caught.exception), "Connection refused (tried ::1, then 127.0.0.1)")

    @defer.inlineCallbacks
    def test_cancelling_the_twisted_endpoint_stops_trying(self):
        from twisted.internet import reactor

        from poetrynow.clients.endpoint import client_endpoint

        connecting = client_endpoint(reactor, Address("localhost", self.port), timeout=5).connect(
            Factory.forProtocol(Protocol)
        )
        connecting.cancel()
        with self.assertRaises(defer.CancelledError):
            yield connecting

    def test_cancelling_mid_attempt_starts_no_other(self):
        from twisted.internet.testing import MemoryReactorClock

        from poetrynow.clients.endpoint import FallbackEndpoint

        class InlinePool:
            def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
                on_result(True, f(*args, **kwargs))

        class Reactor(MemoryReactorClock):
            def getThreadPool(self):
                return InlinePool()

            def callFromThread(self, f, *args, **kwargs):
                f(*args, **kwargs)

        reactor = Reactor()
        connecting = FallbackEndpoint(reactor, Address("localhost", 7), timeout=5).connect(
            Factory.forProtocol(Protocol)
        )
        self.assertEqual([host for host, *_ in reactor.tcpClients], ["::1"])  # the first attempt
        connecting.cancel()
        self.failureResultOf(connecting, defer.CancelledError)
        self.assertEqual([host for host, *_ in reactor.tcpClients], ["::1"])  # and no second
