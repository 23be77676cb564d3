"""The service trees the commands and twistd share, started on a MemoryReactor."""

from __future__ import annotations

from unittest import mock

from twisted.internet.testing import MemoryReactor

from poetrynow.address import Address
from poetrynow.plugins import fastpoetry, poetryproxy, slowpoetry, transformedpoetry
from poetrynow.poems import PoemNotFound
from poetrynow.servers import deploy
from poetrynow.servers.common.listen import BACKLOG, Where
from poetrynow.servers.fast.plain import PoetryFactory, PoetryService
from poetrynow.servers.proxy import PoetryProxyFactory
from poetrynow.servers.slow.plain import SlowPoetryFactory
from poetrynow.servers.transform.server import TransformFactory
from tests.support import localhost_addrinfo
from tests.time_limit import SynchronousTestCase


class ServerTreeTests(SynchronousTestCase):
    def test_the_poem_is_read_before_anything_listens(self):
        reactor = MemoryReactor()
        tree = deploy.fast_poetry("no-such-poem", Where(0, "127.0.0.1"), reactor=reactor)
        self.assertRaises(PoemNotFound, tree.startService)
        self.assertEqual(reactor.tcpServers, [])

    def test_listens_where_asked_with_a_deep_backlog(self):
        reactor = MemoryReactor()
        with mock.patch("socket.getaddrinfo", localhost_addrinfo("127.0.0.1")):
            tree = deploy.fast_poetry("kettle", Where(10007, "localhost"), reactor=reactor)
            tree.startService()
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, backlog, interface), (10007, BACKLOG, "127.0.0.1"))
        self.assertIsInstance(factory, PoetryFactory)
        self.assertIs(factory.service, tree.held)
        self.assertEqual(len(tree.held.poem), 636)
        self.assertEqual(tree.listener.listening_line(), "Serving kettle on port 10007.")

    def test_localhost_is_each_address_it_resolves_to_on_one_port(self):
        for order in (["::1", "127.0.0.1"], ["127.0.0.1", "::1"]):
            reactor = MemoryReactor()
            with mock.patch("socket.getaddrinfo", localhost_addrinfo(*order)):
                tree = deploy.fast_poetry("kettle", Where(10007, "localhost"), reactor=reactor)
                tree.startService()
            listened = [(port, interface) for port, _, _, interface in reactor.tcpServers]
            self.assertEqual(listened, [(10007, address) for address in order])
            self.assertEqual(len(tree.listener.ports), 2)
            tree.stopService()
            self.assertEqual(tree.listener.ports, [])

    def test_stopping_the_tree_stops_listening(self):
        reactor = MemoryReactor()
        tree = deploy.transformed_poetry(Where(10008, "127.0.0.1"), reactor=reactor)
        tree.startService()
        stopped = []
        tree.listener.listening.stopListening = lambda: stopped.append(True)
        tree.stopService()
        self.assertEqual(stopped, [True])
        self.assertIsNone(tree.listener.listening)
        self.assertFalse(tree.running)

    def test_twistd_reads_the_poem_before_it_binds(self):
        # twistd calls privilegedStartService on the whole tree first: the poem must be read there.
        reactor = MemoryReactor()
        tree = deploy.fast_poetry("no-such-poem", Where(10012, "127.0.0.1"), reactor=reactor)
        self.assertRaises(PoemNotFound, tree.privilegedStartService)
        self.assertEqual(reactor.tcpServers, [])

    def test_every_builder_runs_on_the_reactor_it_is_given(self):
        reactor = MemoryReactor()
        trees = [
            deploy.fast_poetry("kettle", Where(0, "127.0.0.1"), reactor=reactor),
            deploy.slow_poetry("kettle", 7, 0.5, Where(0, "127.0.0.1"), reactor=reactor),
            deploy.transformed_poetry(Where(0, "127.0.0.1"), reactor=reactor),
            deploy.poetry_proxy(Address("127.0.0.1", 1), Where(0, "127.0.0.1"), reactor=reactor),
        ]
        for tree in trees:
            tree.startService()
        self.assertEqual(len(reactor.tcpServers), 4)
        self.assertIs(trees[1].listener.factory.clock, reactor)
        self.assertIs(trees[2].listener.factory.clock, reactor)
        self.assertIs(trees[3].held.reactor, reactor)

    def test_twistd_listens_in_privileged_start_then_starts_once(self):
        # twistd binds before dropping privileges; startService must not bind again.
        reactor = MemoryReactor()
        tree = deploy.slow_poetry("relay", 7, 0.5, Where(10009, "127.0.0.1"), reactor=reactor)
        tree.privilegedStartService()
        tree.startService()
        self.assertEqual(len(reactor.tcpServers), 1)

    def test_each_plugin_builds_the_commands_tree(self):
        cases = [
            (fastpoetry, ["--poem", "kettle", "--port", "10010", "--quiet"], PoetryFactory),
            (slowpoetry, ["--poem", "kettle", "--num-bytes", "7", "--delay", "0.5"], SlowPoetryFactory),
            (transformedpoetry, ["--max-length", "99", "--timeout", "0"], TransformFactory),
            (poetryproxy, ["10011"], PoetryProxyFactory),
        ]
        for maker, argv, factory_class in cases:
            options = maker.options()
            options.parseOptions(argv)
            tree = maker.makeService(options)
            self.assertIsInstance(tree, deploy.ServerTree)
            self.assertEqual(tree.name, maker.tapname)
            self.assertIsInstance(tree.listener.factory, factory_class)
        slow = slowpoetry.options()
        slow.parseOptions(["--poem", "kettle", "--num-bytes", "7", "--delay", "0.5"])
        factory = slowpoetry.makeService(slow).listener.factory
        self.assertEqual((factory.num_bytes, factory.delay), (7, 0.5))
        proxy = poetryproxy.options()
        proxy.parseOptions(["example.invalid:10011"])
        self.assertEqual(proxy["upstream"], Address("example.invalid", 10011))

    def test_the_sharing_plugins_take_reuse_port_with_a_port(self):
        from twisted.python import usage

        for maker, argv in (
            (fastpoetry, ["--poem", "kettle"]),
            (slowpoetry, ["--poem", "kettle"]),
            (poetryproxy, ["10011"]),
        ):
            options = maker.options()
            options.parseOptions(["--port", "10012", "--reuse-port", *argv])
            self.assertTrue(maker.makeService(options).listener.where.reuse_port)
            with self.assertRaises(usage.UsageError):
                maker.options().parseOptions(["--reuse-port", *argv])  # port 0 cannot be shared
        with self.assertRaises(usage.UsageError):
            transformedpoetry.options().parseOptions(["--port", "10012", "--reuse-port"])

    def test_the_slowpoetry_plugin_takes_the_faults(self):
        from twisted.python import usage

        from poetrynow.faults import Faults

        options = slowpoetry.options()
        options.parseOptions(
            ["--poem", "kettle", "--reset-after", "300", "--jitter", "0.2", "--faulty", "0.25", "--seed", "7"]
        )
        factory = slowpoetry.makeService(options).listener.factory
        self.assertEqual(factory.faults, Faults(jitter=0.2, reset_after=300, faulty=0.25, seed=7))
        with self.assertRaises(usage.UsageError):
            slowpoetry.options().parseOptions(["--poem", "kettle", "--stall-for", "1"])
        with self.assertRaises(usage.UsageError):
            slowpoetry.options().parseOptions(["--poem", "kettle", "--faulty", "1.5"])

    def test_a_quiet_fast_tree_logs_no_client(self):
        fast = fastpoetry.options()
        fast.parseOptions(["--poem", "kettle", "--quiet"])
        self.assertFalse(fastpoetry.makeService(fast).listener.factory.log_clients)

    def test_poetry_service_holds_nothing_before_start(self):
        self.assertEqual(PoetryService("kettle").poem, b"")
