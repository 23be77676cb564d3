"""TLS on a relay, met by real clients: curl with the run's CA, Python's ssl, openssl s_client.

A real ``poetrynow faults`` process; its upstreams are real HTTP servers on 127.0.0.1
(Python's, in a thread), plain or over TLS. The relay terminates TLS for its clients
with a certificate the run's CA signs (``GET /tls/ca``), speaks TLS to its upstream,
checked or not, and its toxics act on the plaintext between the two.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import urllib.request

from tests.support import DEADLINE, temp_dir
from tests.test_faults_api import start_faults
from tests.time_limit import SynchronousTestCase

CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
PAGE = b"A page, sent in plaintext to the relay and over TLS to its client.\n" * 40


class Page(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # (keep-alive)

    def do_GET(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


class Upstream:
    """An HTTP/1.1 server on 127.0.0.1 in a thread; over TLS with ``cert`` and ``key`` (PEM files)."""

    def __init__(self, case, cert: str | None = None, key: str | None = None):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.server.daemon_threads = True
        self.server.requests = 0  # type: ignore[attr-defined]
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        case.addCleanup(self.server.server_close)
        case.addCleanup(self.server.shutdown)

    @property
    def requests(self) -> int:
        """The requests it has answered so far."""
        return self.server.requests  # type: ignore[attr-defined]


def other_authority(case) -> str:
    """A CA and a certificate for localhost that the run does not know (another run's)."""
    from poetrynow.relay.authority import Authority

    folder = os.path.join(temp_dir(case), "other")
    Authority(folder)
    return folder


class TlsRelayTests(SynchronousTestCase):
    def setUp(self):
        from poetrynow.relay.authority import missing

        if missing() is not None:
            self.skipTest(missing())
        self.folder = os.path.join(temp_dir(self), "tls")
        self.faults, self.api = start_faults(self, "--tls-dir", self.folder)
        self.ca = os.path.join(temp_dir(self), "ca.pem")
        with urllib.request.urlopen(self.api.url + "/tls/ca", timeout=DEADLINE) as answer:
            self.assertEqual(answer.headers["Content-Type"], "application/x-pem-file")
            with open(self.ca, "wb") as f:
                f.write(answer.read())

    def proxy(self, name: str, upstream: int | str, tls: dict | None) -> int:
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": str(upstream), "tls": tls}
        if isinstance(upstream, int):
            body["upstream"] = f"127.0.0.1:{upstream}"
        made = self.api.request("POST", "/proxies", body)
        self.assertEqual(made["tls"], {"listen": True, "upstream": False, "verify_upstream": True, **tls})
        return int(made["listen"].rsplit(":", 1)[1])

    def curl(self, url: str, *more: str) -> subprocess.CompletedProcess:
        if CURL is None:
            self.skipTest("needs curl (Debian's curl)")
        argv = [CURL, "--silent", "--show-error", "--max-time", "20", "--cacert", self.ca, *more, url]
        return subprocess.run(argv, capture_output=True, timeout=DEADLINE)

    def test_curl_through_a_tls_relay_to_a_plain_upstream(self):
        port = self.proxy("web", Upstream(self).port, {})
        for host in ("localhost", "127.0.0.1"):  # the certificate names both
            done = self.curl(f"https://{host}:{port}/")
            self.assertEqual((done.returncode, done.stdout), (0, PAGE), done.stderr)
        unknown = subprocess.run([CURL, "-sS", "--max-time", "20", f"https://localhost:{port}/"],
                                 capture_output=True, timeout=DEADLINE)  # fmt: skip
        self.assertEqual(unknown.returncode, 60, unknown.stderr)  # no --cacert: the CA is not the machine's

    def test_curl_through_a_tls_relay_to_a_tls_upstream(self):
        upstream = Upstream(
            self, os.path.join(self.folder, "relay.pem"), os.path.join(self.folder, "relay-key.pem")
        )
        port = self.proxy("both", f"localhost:{upstream.port}", {"upstream": True})
        done = self.curl(f"https://localhost:{port}/")
        self.assertEqual((done.returncode, done.stdout), (0, PAGE), done.stderr)
        plain = self.proxy("into-tls", upstream.port, {"listen": False, "upstream": True})
        with urllib.request.urlopen(f"http://127.0.0.1:{plain}/", timeout=DEADLINE) as answer:
            self.assertEqual(answer.read(), PAGE)  # (checked against 127.0.0.1, which it names too)

    def test_an_upstream_whose_certificate_is_not_trusted_costs_its_connection(self):
        other = other_authority(self)
        upstream = Upstream(self, os.path.join(other, "relay.pem"), os.path.join(other, "relay-key.pem"))
        checked = self.proxy("checked", upstream.port, {"listen": False, "upstream": True})
        with socket.create_connection(("127.0.0.1", checked), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                self.assertEqual(sock.recv(65536), b"")  # closed: nothing of it reached the client
            except ConnectionResetError:
                pass  # (reset, as a failed upstream resets its client)
        said = self.faults.out.until(lambda line: "TLS with its upstream failed" in line, DEADLINE)[-1]
        self.assertIn("Relay checked's connection 1", said)
        trusting = self.proxy(
            "trusting", upstream.port, {"listen": False, "upstream": True, "verify_upstream": False}
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{trusting}/", timeout=DEADLINE) as answer:
            self.assertEqual(answer.read(), PAGE)

    def test_toxics_act_on_the_plaintext(self):
        port = self.proxy("cut", Upstream(self).port, {})
        head = b"HTTP/1.1 200 OK\r\n"
        proxy = self.api.get("cut")
        proxy.add_toxic("limit_data", stream="downstream", bytes=len(head))
        context = ssl.create_default_context(cafile=self.ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = b""
            try:
                while chunk := sock.recv(65536):
                    got += chunk
            except (ssl.SSLError, ConnectionError):
                pass  # (a close without TLS's close_notify, as a cut connection is)
        self.assertEqual(got, head)  # counted in the plaintext's bytes, not the ciphertext's

    def test_a_reset_over_tls_is_a_reset_not_a_clean_end(self):
        port = self.proxy("resetting", Upstream(self).port, {})
        self.api.get("resetting").add_toxic("reset_peer", timeout=0)
        # TLS in memory over a socket of the test's own: Python's ssl sockets report a reset and a
        # FIN without close_notify alike (SSLEOFError); the socket itself tells them apart.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.create_default_context(cafile=self.ca)
        tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    raw.sendall(outgoing.read())
                    incoming.write(raw.recv(65536))
            tls.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            raw.sendall(outgoing.read())
            with self.assertRaises(ConnectionResetError):  # not b"": a reset, not a FIN
                while raw.recv(65536):
                    pass

    def test_an_upstream_s_close_is_a_clean_tls_close(self):
        # A response read to its close: the upstream's FIN must reach the client as TLS's own
        # close (close_notify), not as a FIN beneath TLS, which a TLS client takes for a cut.
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def answer_and_close() -> None:
            sock, _ = listener.accept()
            with sock:
                sock.recv(65536)
                sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PAGE)

        threading.Thread(target=answer_and_close, daemon=True).start()
        port = self.proxy("closing", listener.getsockname()[1], {})
        context = ssl.create_default_context(cafile=self.ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        # (ragged ends not taken for ends: only a close_notify gives b"", a FIN alone SSLEOFError)
        with context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
        self.assertTrue(got.endswith(b"\r\n\r\n" + PAGE), got[:80])

    def test_a_port_probe_is_no_failed_handshake_but_garbage_is(self):
        port = self.proxy("probed", Upstream(self).port, {})
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()  # (a health check's)
        done = self.curl(f"https://localhost:{port}/")
        self.assertEqual(done.returncode, 0, done.stderr)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # (plain HTTP to a TLS port)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        said = self.faults.out.until(lambda line: "TLS with its client failed" in line, DEADLINE)
        self.assertIn("Relay probed's connection 3", said[-1])  # the first such line: not the probe's
        self.assertNotIn("connection 1:", "".join(said))

    def test_a_handshake_that_does_not_finish_costs_its_connection_only(self):
        if OPENSSL is None:
            self.skipTest("needs openssl (Debian's openssl)")
        port = self.proxy("slow", Upstream(self).port, {})
        # s_client -starttls smtp waits for an SMTP greeting before its ClientHello: a relay
        # that waits for the ClientHello then has a handshake that never finishes.
        waiting = subprocess.Popen(
            [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp", "-CAfile", self.ca],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.addCleanup(waiting.kill)
        done = self.curl(f"https://localhost:{port}/")  # meanwhile, another client is served
        self.assertEqual((done.returncode, done.stdout), (0, PAGE), done.stderr)
        said = self.faults.out.until(lambda line: "TLS handshake" in line, DEADLINE)[-1]
        self.assertIn("did not finish within 10 s; the connection is closed", said)
        waiting.wait(DEADLINE)  # its connection was closed: s_client ends
        again = self.curl(f"https://localhost:{port}/")
        self.assertEqual(again.returncode, 0, again.stderr)

    def test_bad_tls_settings_are_a_400_and_a_plain_relay_has_no_tls_field(self):
        from tests.toxiproxy_client import ToxiproxyError

        for tls, reason in (
            ("yes", "tls must be an object"),
            ({"listen": "true"}, "tls.listen must be true or false"),
            ({"verify": False}, "tls has no field 'verify'"),
        ):
            with self.subTest(tls=tls):
                with self.assertRaises(ToxiproxyError) as refused:
                    self.api.request(
                        "POST", "/proxies", {"name": "bad", "upstream": "127.0.0.1:1", "tls": tls}
                    )
                self.assertEqual(refused.exception.status, 400)
                self.assertIn(reason, refused.exception.message)
        plain = self.api.create("plain", "127.0.0.1:1")
        self.assertNotIn("tls", plain.fields)
        self.assertNotIn("tls", self.api.request("GET", "/proxies")["plain"])

    def test_the_ca_is_kept_in_tls_dir_for_the_next_run(self):
        with open(self.ca, "rb") as f:
            first = f.read()
        self.assertEqual(stat.S_IMODE(os.stat(self.folder).st_mode), 0o700)
        for key in ("ca-key.pem", "relay-key.pem"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.folder, key)).st_mode), 0o600)
        _, api = start_faults(self, "--tls-dir", self.folder)
        with urllib.request.urlopen(api.url + "/tls/ca", timeout=DEADLINE) as answer:
            self.assertEqual(answer.read(), first)
        _, fresh = start_faults(self)
        with urllib.request.urlopen(fresh.url + "/tls/ca", timeout=DEADLINE) as answer:
            self.assertNotEqual(answer.read(), first)  # without it: a CA of the run's own


class TlsDirTests(SynchronousTestCase):
    def test_a_tls_dir_that_cannot_be_used_is_one_line_and_status_1(self):
        from tests.support import run

        blocker = os.path.join(temp_dir(self), "a-file")
        with open(blocker, "w"):
            pass
        done = run("poetrynow", "faults", "--api", "127.0.0.1:0", "--tls-dir", os.path.join(blocker, "x"))
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("--tls-dir", done.stderr)
        self.assertNotIn("Traceback", done.stderr)


class AuthorityTests(SynchronousTestCase):
    def setUp(self):
        from poetrynow.relay.authority import missing

        if missing() is not None:
            self.skipTest(missing())

    def test_a_kept_certificate_whose_key_is_not_its_own_is_made_anew(self):
        from poetrynow.relay.authority import Authority

        folder, other = os.path.join(temp_dir(self), "kept"), os.path.join(temp_dir(self), "other")
        first = Authority(folder)
        Authority(other)
        shutil.copy(os.path.join(other, "relay-key.pem"), os.path.join(folder, "relay-key.pem"))
        os.chmod(os.path.join(folder, "ca-key.pem"), 0o644)
        again = Authority(folder)
        self.assertEqual(again.ca_pem, first.ca_pem)  # the CA kept: a suite's trust still holds
        self.assertNotEqual(again.pem["leaf"], first.pem["leaf"])  # the pair made whole again
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(folder, "ca-key.pem")).st_mode), 0o600)
        kept = [".lock", "ca-key.pem", "ca.pem", "relay-key.pem", "relay.pem"]  # (.lock: runs take turns)
        self.assertEqual(sorted(os.listdir(folder)), kept)

    def test_runs_started_at_once_share_one_ca(self):
        import fcntl
        import select
        import sys

        from poetrynow.relay.authority import Authority

        folder, other = os.path.join(temp_dir(self), "shared"), os.path.join(temp_dir(self), "other")
        Authority(folder)
        swapped = Authority(other).ca_pem
        script = (
            "import sys; from poetrynow.relay.authority import Authority; print('ready', flush=True); "
            "sys.stdin.readline(); print(Authority(sys.argv[1]).ca_pem.decode().split()[3][:40], flush=True)"
        )
        child = subprocess.Popen([sys.executable, "-c", script, folder], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.addCleanup(child.kill)
        self.assertEqual(child.stdout.readline(), "ready\n")
        with open(os.path.join(folder, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another run, making its files
            child.stdin.write("go\n")
            child.stdin.flush()
            waited, _, _ = select.select([child.stdout], [], [], 0.5)
            self.assertEqual(waited, [])  # it waits for the lock (it would read in a few ms)
            for name in ("ca.pem", "ca-key.pem", "relay.pem", "relay-key.pem"):
                shutil.copy(os.path.join(other, name), os.path.join(folder, name))
        self.assertEqual(child.stdout.readline().strip(), swapped.decode().split()[3][:40])  # what it left
        child.wait(DEADLINE)

    def test_the_machine_s_cas_include_a_folder_of_hashed_names(self):
        from unittest import mock

        from OpenSSL import crypto

        from poetrynow.relay import tls
        from poetrynow.relay.authority import Authority

        authority = Authority(os.path.join(temp_dir(self), "ca"))
        folder = os.path.join(temp_dir(self), "certs")
        os.mkdir(folder)
        for name in ("0a1b2c3d.0", "not-hashed.pem"):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(authority.ca_pem)
        der = ssl.PEM_cert_to_DER_cert(authority.ca_pem.decode())
        self.assertEqual(tls.capath_cas(folder), [der])  # (only what OpenSSL itself would read)
        paths = ssl.get_default_verify_paths()._replace(cafile=None, capath=folder)
        bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # (a system with no bundle file: nothing loaded)
        with mock.patch.object(tls.stdlib_ssl, "get_default_verify_paths", return_value=paths), \
                mock.patch.object(tls.stdlib_ssl, "create_default_context", return_value=bare):  # fmt: skip
            found = tls.system_cas.__wrapped__()
        self.assertEqual([cert.dump(crypto.FILETYPE_ASN1) for cert in found], [der])

    def test_the_relays_certificate_is_for_a_server_s_signature_only(self):
        from cryptography import x509

        from poetrynow.relay.authority import Authority

        leaf = x509.load_pem_x509_certificate(Authority().pem["leaf"])
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
        self.assertTrue(usage.critical)
        self.assertTrue(usage.value.digital_signature)
        self.assertFalse(usage.value.key_cert_sign)
