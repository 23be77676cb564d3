"""fastpoetry, slowpoetry --concurrent, transformedpoetry and poetry-proxy as real commands."""

import json
import socket

from poetrynow.netstring import encode
from poetrynow.poems import load_poem
from tests.support import Editions, Server, free_port, plain_twin, run, temp_dir, write_poem
from tests.time_limit import SynchronousTestCase


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


class FastPoetryTests(Editions, SynchronousTestCase):
    def test_serves_the_poem_and_logs_each_client(self):
        server = self.server("relay", command_name="fastpoetry")
        try:
            self.assertEqual(server.first_line, f"Serving relay on port {server.port}.\n")
            self.assertEqual(fetch(server.port), load_poem("relay").data)
        finally:
            self.assertEqual(server.stop(), 143)
        self.assertRegex(server.stdout, r"sending 658 bytes of poetry to 127\.0\.0\.1:\d+")
        self.assertNotIn("Traceback", server.stderr)

    def test_large_poem_is_streamed_whole(self):
        big = b"a line of a very long poem, repeated until it is large\n" * 150_000  # ~8 MB
        path = write_poem(temp_dir(self), "epic.txt", big)
        server = self.server(path, "--quiet", command_name="fastpoetry")
        try:
            self.assertEqual(fetch(server.port), big)
            self.assertEqual(fetch(server.port), big)
        finally:
            server.stop()

    def test_missing_poem_and_port_in_use(self):
        result = run("fastpoetry", *self.edition_args("fastpoetry"), "no-such-poem")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.splitlines()), 1)
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = str(taken.getsockname()[1])
            result = run("fastpoetry", *self.edition_args("fastpoetry"), "kettle", "--port", port)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"fastpoetry: error: cannot listen on localhost:{port}: Address already in use"],
        )


class ConcurrentSlowPoetryTests(Editions, SynchronousTestCase):
    def test_serves_many_clients_at_once(self):
        # 20 chunks of 0.05 s = 1 s per client; one at a time would take 10 s.
        server = self.server("kettle", "--concurrent", "--num-bytes", "32", "--delay", "0.05", "--quiet")
        try:
            result = run("get-poetry", "--engine", "select", "--json", *[str(server.port)] * 10)
        finally:
            server.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        records = [json.loads(line) for line in result.stdout.splitlines()]
        [summary] = [r for r in records if r["event"] == "summary"]
        self.assertEqual(summary["poems"], 10)
        # At once, not in turn, shown by the order of the events rather than the time the run
        # took (which a loaded machine stretches): a server that serves one client at a time
        # sends a second client nothing until the first poem is whole.
        first_whole = min(r["t"] for r in records if r["event"] == "finished")
        begun = {r["task"] for r in records if r["event"] == "received" and r["t"] < first_whole}
        self.assertGreater(len(begun), 1, begun)

    def test_logs_clients_and_chunks(self):
        server = self.server("relay", "--concurrent", "--num-bytes", "400", "--delay", "0")
        try:
            self.assertEqual(fetch(server.port), load_poem("relay").data)
        finally:
            server.stop()
        lines = server.stdout.splitlines()
        self.assertRegex(lines[0], r"^Somebody at 127\.0\.0\.1:\d+ wants poetry!$")
        self.assertRegex(lines[1], r"^Sending 400 bytes to 127\.0\.0\.1:\d+$")
        self.assertRegex(lines[2], r"^Sending 258 bytes to 127\.0\.0\.1:\d+$")

    def test_client_hanging_up_is_logged_and_others_go_on(self):
        server = self.server("lighthouse", "--concurrent", "--num-bytes", "10", "--delay", "0.001")
        try:
            with socket.create_connection(("127.0.0.1", server.port)) as rude:
                rude.recv(10)
            self.assertEqual(fetch(server.port), load_poem("lighthouse").data)
        finally:
            server.stop()
        self.assertRegex(server.stdout, r"Client at 127\.0\.0\.1:\d+ hung up after \d+ of 3073 bytes\.")


class TransformedPoetryTests(SynchronousTestCase):
    def exchange(self, port: int, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request)
            chunks = []
            try:
                while data := sock.recv(65536):
                    chunks.append(data)
            except ConnectionResetError:
                pass
        return b"".join(chunks)

    def test_answers_good_requests_and_refuses_bad_ones(self):
        server = Server("--max-length", "100", command_name="transformedpoetry")
        try:
            self.assertEqual(server.first_line, f"Serving transforms on port {server.port}.\n")
            self.assertEqual(self.exchange(server.port, encode(b"cummingsify.HeLLo")), b"5:hello,")
            self.assertEqual(self.exchange(server.port, b"500:"), b"")
            self.assertEqual(self.exchange(server.port, encode(b"nodot")), b"")
            self.assertEqual(self.exchange(server.port, encode(b"shout.still serving")), b"13:STILL SERVING,")
        finally:
            server.stop()
        refused = [line for line in server.stdout.splitlines() if line.startswith("Refused")]
        self.assertEqual(len(refused), 2)


class PoetryProxyCommandTests(Editions, SynchronousTestCase):
    def test_proxies_and_caches(self):
        upstream = self.server("kettle", "--concurrent", "--num-bytes", "100", "--delay", "0.01", "--quiet")
        proxy = self.server(str(upstream.port), command_name="poetry-proxy")
        try:
            self.assertEqual(proxy.first_line, f"Proxying 127.0.0.1:{upstream.port} on port {proxy.port}.\n")
            self.assertEqual(fetch(proxy.port), load_poem("kettle").data)
            upstream.stop()  # the cache answers without the upstream
            self.assertEqual(fetch(proxy.port), load_poem("kettle").data)
        finally:
            proxy.stop()
            upstream.stop()
        self.assertEqual(proxy.stdout.splitlines()[:2], ["Fetching poem from server.", "Using cached poem."])

    def test_cancels_when_the_client_hangs_up(self):
        upstream = self.server("lighthouse", "--concurrent", "--num-bytes", "10", "--delay", "0.05")
        proxy = self.server(str(upstream.port), command_name="poetry-proxy")
        try:
            with socket.create_connection(("127.0.0.1", proxy.port)):
                self.wait_for_line(upstream, "Somebody at")
            # The client is gone: the proxy cancels, and the upstream sees it hang up.
            self.wait_for_line(upstream, "hung up after")
        finally:
            proxy.stop()
            upstream.stop()
        self.assertIn("Canceling poem download.", proxy.stdout)

    def wait_for_line(self, server, text):
        server.out.until(lambda line: text in line)

    def test_upstream_down_is_a_failed_task(self):
        proxy = self.server(str(free_port()), command_name="poetry-proxy")
        try:
            result = run("get-poetry", "--engine", "twisted", str(proxy.port))
        finally:
            proxy.stop()
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.splitlines(),
            [f"Task 1: failed to get poetry from 127.0.0.1:{proxy.port}: Connection reset by peer"],
        )
        self.assertIn("The poem download failed: Connection refused", proxy.stdout)

    def test_bad_upstream_address_is_a_usage_error(self):
        result = run("poetry-proxy", *self.edition_args("poetry-proxy"), "nowhere")
        self.assertEqual(result.returncode, 2)
        self.assertIn("bad address 'nowhere'", result.stderr)


class ReusePortTests(Editions, SynchronousTestCase):
    def test_two_slow_servers_share_one_port_and_the_kernel_spreads_the_clients(self):
        # A port found free may be taken before the first server binds it (on ::1 too, by any
        # process's connection): another port then, a few times. Once the first holds it, the
        # second shares it by SO_REUSEPORT, and nothing else can take it.
        for attempt in range(5):
            port = str(free_port())
            settings = ("kettle", "--concurrent", "--reuse-port", "--port", port)
            settings += ("--num-bytes", "700", "--delay", "0")
            try:
                first = self.server(*settings)
            except RuntimeError as problem:
                if "Address already in use" in str(problem) and attempt < 4:
                    continue
                raise
            break
        second = self.server(*settings)
        try:
            poems = [fetch(int(port)) for _ in range(40)]
        finally:
            first.stop()
            second.stop()
        self.assertEqual(poems, [load_poem("kettle").data] * 40)
        served = [server.stdout.count("wants poetry!") for server in (first, second)]
        self.assertEqual(sum(served), 40)
        self.assertTrue(all(served), served)  # each process took its share

    def test_reuse_port_needs_a_port_and_the_concurrent_server(self):
        for args in (
            ["kettle", "--concurrent", "--reuse-port"],
            ["kettle", "--reuse-port", "--port", "10000"],
        ):
            result = run("slowpoetry", *self.edition_args("slowpoetry"), *args)
            self.assertEqual(result.returncode, 2, args)
            self.assertRegex(result.stderr.splitlines()[-1], r"^slowpoetry: error: --reuse-port ")
        result = run(
            "fastpoetry",
            *self.edition_args("fastpoetry"),
            "kettle",
            "--reuse-port",
            "--listen",
            "unix:/tmp/poetrynow-never.sock",
        )
        self.assertEqual(result.returncode, 2)
        self.assertIn("--reuse-port needs a TCP port to share", result.stderr)


class PoetrynowServeTests(SynchronousTestCase):
    def test_the_article_s_setup_in_one_command_stopped_by_ctrl_c(self):
        import re
        import signal

        from tests.support import Child, command

        # Port 0 for every server: each says its port, and the proxy follows the first one's.
        serve = Child(
            [
                *command("poetrynow"), "serve", "--ports", "0,0,0", "--delay", "0",
                "--num-bytes", "5000,5000,5000", "--with-transform", "0", "--with-proxy", "0",
            ]
        )  # fmt: skip
        try:
            lines = [serve.out.next_line() for _ in range(5)]
            said = [re.fullmatch(r"(.+) on port (\d+)\.\n", line) for line in lines]
            self.assertTrue(all(said), lines)
            ports = [int(match.group(2)) for match in said if match]
            slow, transform, proxy = ports[:3], ports[3], ports[4]
            self.assertEqual(
                [match.group(1) for match in said if match],
                [
                    "Serving lighthouse",
                    "Serving kettle",
                    "Serving relay",
                    "Serving transforms",
                    f"Proxying 127.0.0.1:{slow[0]}",
                ],
            )
            self.assertNotIn(0, ports)
            for port, poem in zip(slow, ("lighthouse", "kettle", "relay"), strict=True):
                self.assertEqual(fetch(port), load_poem(poem).data)
            self.assertEqual(fetch(proxy), load_poem("lighthouse").data)
            with socket.create_connection(("127.0.0.1", transform), timeout=10) as sock:
                sock.sendall(encode(b"shout.hello"))
                self.assertEqual(sock.recv(100), encode(b"HELLO"))
        finally:
            serve.stop(signal.SIGINT)
        err = serve.stderr
        self.assertEqual(serve.process.returncode, 130, err)
        self.assertEqual(err.splitlines(), ["poetrynow serve: stopped by SIGINT: no client was cut short"])
        for port in (*slow, transform, proxy):
            with socket.socket() as probe:
                self.assertNotEqual(probe.connect_ex(("127.0.0.1", port)), 0)


PlainFastPoetryTests = plain_twin(FastPoetryTests)
PlainConcurrentSlowPoetryTests = plain_twin(ConcurrentSlowPoetryTests)
PlainPoetryProxyCommandTests = plain_twin(PoetryProxyCommandTests)
PlainReusePortTests = plain_twin(ReusePortTests)
