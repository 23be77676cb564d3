"""Every server on each endpoint form (tcp on IPv4, tcp6 on ::1, a Unix socket), and clients to match."""

from __future__ import annotations

import os
import socket

from poetrynow.address import Address, parse_address
from poetrynow.clients import EngineOptions, run_engine
from poetrynow.events import Finished, Transformed
from poetrynow.poems import load_poem
from poetrynow.servers import deploy
from poetrynow.servers.common.listen import Where
from tests.support import Editions, Server, ServersInAThread, plain_twin, run, temp_dir
from tests.time_limit import SynchronousTestCase


def forms(directory: str) -> dict[str, tuple[str, str]]:
    """name -> (server description, how a client names it once the port is known: a format)."""
    sock = os.path.join(directory, "poetry.sock")
    return {
        "tcp": ("tcp:0:interface=127.0.0.1", "127.0.0.1:{port}"),
        "tcp6": ("tcp6:0:interface=\\:\\:1", "[::1]:{port}"),
        "unix": (f"unix:{sock}", f"unix:{sock}"),
    }


def fetch(address: Address, **options) -> list:
    events: list = []
    run_engine("twisted", [address], events.append, EngineOptions(**options))
    return events


class EveryServerOnEveryFormTests(Editions, SynchronousTestCase):
    def setUp(self):
        self.dir = temp_dir(self)  # removed after the servers stop, so their sockets go first
        self.servers = ServersInAThread(self, plain=self.plain)

    def start(self, build, *args, description: str, **kwargs):
        from twisted.internet.threads import blockingCallFromThread

        kwargs.setdefault("plain", self.plain)
        tree = build(*args, where=Where(endpoint=description), reactor=self.servers.reactor, **kwargs)
        blockingCallFromThread(self.servers.reactor, self.servers._start, tree)
        return tree

    def client_address(self, tree, client: str) -> Address:
        host = tree.listener.listening.getHost()
        return parse_address(client.format(port=getattr(host, "port", 0)))

    def test_fast_and_slow_servers(self):
        for name, (description, client) in forms(self.dir).items():
            for build, args in [
                (deploy.fast_poetry, ("kettle",)),
                (deploy.slow_poetry, ("kettle", 300, 0.001)),
            ]:
                with self.subTest(form=name, server=build.__name__):
                    tree = self.start(build, *args, description=description, log_clients=False)
                    if name == "unix":
                        self.assertEqual(tree.listener.listening_line(), f"Serving kettle on {description}.")
                    else:
                        self.assertRegex(tree.listener.listening_line(), r"^Serving kettle on port \d+\.$")
                    events = fetch(self.client_address(tree, client))
                    self.assertEqual(
                        [e.poem for e in events if isinstance(e, Finished)], [load_poem("kettle").data]
                    )
                    self.servers.call_stop(tree)

    def test_transform_server_and_proxy(self):
        for name, (description, client) in forms(self.dir).items():
            with self.subTest(form=name):
                upstream = self.servers.fast("caffe")
                xform = self.start(deploy.transformed_poetry, description=description, log_clients=False)
                events = fetch(Address("127.0.0.1", upstream), xform=self.client_address(xform, client))
                self.assertEqual(len([e for e in events if isinstance(e, Transformed)]), 1)
                self.servers.call_stop(xform)
                # The proxy listens on the form and fetches from an upstream given in the same form.
                up = self.start(deploy.fast_poetry, "relay", description=description, log_clients=False)
                proxy = self.start(
                    deploy.poetry_proxy,
                    self.client_address(up, client),
                    description="tcp:0:interface=127.0.0.1",
                )
                events = fetch(Address("127.0.0.1", proxy.listener.port))
                self.assertEqual(
                    [e.poem for e in events if isinstance(e, Finished)], [load_poem("relay").data]
                )
                self.servers.call_stop(proxy)
                self.servers.call_stop(up)


class CommandsTests(Editions, SynchronousTestCase):
    """The commands' --listen, as a user types it, for the blocking and a Twisted server."""

    def setUp(self):
        self.dir = temp_dir(self)

    def test_each_command_on_each_form(self):
        for name, (description, client) in forms(self.dir).items():
            for command, extra in [
                ("slowpoetry", ["--num-bytes", "300", "--delay", "0"]),
                ("fastpoetry", []),
            ]:
                with self.subTest(form=name, command=command):
                    server = self.server(
                        "kettle", "--listen", description, "--quiet", *extra, command_name=command
                    )
                    try:
                        address = client.format(port=server.port) if name != "unix" else client
                        if name == "unix":
                            self.assertEqual(server.first_line, f"Serving kettle on {description}.\n")
                        result = run("get-poetry", "--engine", "twisted", "--no-poems", address)
                        self.assertEqual(result.returncode, 0, result.stderr)
                        self.assertIn("Task 1: 636 bytes of poetry", result.stdout)
                    finally:
                        server.stop()

    def test_unix_addresses_belong_to_the_twisted_engine(self):
        result = run("get-poetry", "--engine", "select", "unix:/tmp/no.sock")
        self.assertEqual(result.returncode, 2)
        self.assertIn("unix:/tmp/no.sock", result.stderr.splitlines()[-1])

    def test_listen_with_port_is_a_usage_error_and_a_bad_description_one_line(self):
        both = run("fastpoetry", "kettle", "--listen", "tcp:0", "--port", "10000")
        self.assertEqual(both.returncode, 2)
        self.assertIn("give --listen, or --port and --iface, not both", both.stderr)
        bad = run("transformedpoetry", "--listen", "carrier-pigeon:7")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("Unknown endpoint type", bad.stderr.splitlines()[-1])
        self.assertNotIn("Traceback", bad.stderr)

    def test_ipv6_listening_line_names_the_port(self):
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        server = Server("--listen", "tcp6:0:interface=\\:\\:1", "--quiet", command_name="transformedpoetry")
        try:
            self.assertRegex(server.first_line, r"^Serving transforms on port \d+\.$")
        finally:
            server.stop()


PlainEveryServerOnEveryFormTests = plain_twin(EveryServerOnEveryFormTests)
