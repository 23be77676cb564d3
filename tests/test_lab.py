"""``poetrynow lab`` as a page and its browser see it: a real lab process, real runs, real HTTP.

The lab runs as its command (``--port 0 --no-browser``, its first line its address);
these tests speak HTTP to it with the standard library (the token, the Origin, bad
settings, a run's events and its table, cancel, a stop by signal, nothing left
running). tests/test_lab_browser.py drives the page in headless Chromium.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import signal
import socket
import threading
import time

from tests.support import DEADLINE, Child, command
from tests.time_limit import SynchronousTestCase


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc); the test is skipped where that
    cannot be read (an empty list would make "every child has gone" true of nothing)."""
    from twisted.trial.unittest import SkipTest

    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        raise SkipTest("needs /proc/PID/task/TID/children (Linux) to count a process's children")
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


class Lab:
    """A real lab process; its address, token, and HTTP to it."""

    def __init__(self, test: SynchronousTestCase):
        self.child = Child(command("poetrynow") + ["lab", "--port", "0", "--no-browser"])
        test.addCleanup(self.child.stop)
        line = self.child.out.next_line(DEADLINE)
        found = re.fullmatch(r"Lab on (http://127\.0\.0\.1:(\d+)/\?token=([\w-]+))\n", line)
        test.assertIsNotNone(found, line)
        assert found is not None
        self.url, self.port, self.token = found.group(1), int(found.group(2)), found.group(3)

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        token: bool = True,
        headers: dict | None = None,
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            target = f"{path}{'&' if '?' in path else '?'}token={self.token}" if token else path
            data = json.dumps(body).encode() if body is not None else None
            sent = {"Content-Type": "application/json"} if method == "POST" else {}
            connection.request(method, target, body=data, headers={**sent, **(headers or {})})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def events(self) -> Events:
        return Events(self)


class Events:
    """The lab's event stream, read in a thread of its own: each message as a dict."""

    def __init__(self, lab: Lab):
        self.connection = http.client.HTTPConnection("127.0.0.1", lab.port, timeout=60)
        self.connection.request("GET", f"/events?token={lab.token}")
        self.sock = self.connection.sock
        self.answer = self.connection.getresponse()
        self.messages: list[dict] = []
        self.arrived = threading.Condition()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        try:
            while line := self.answer.fp.readline():
                if line.startswith(b"data: "):
                    with self.arrived:
                        self.messages.append(json.loads(line[6:]))
                        self.arrived.notify_all()
        except (OSError, ValueError):
            pass

    def until(self, kind: str, within: float = 120.0) -> dict:
        """The first message of type ``kind`` (waiting at most ``within`` seconds for it)."""
        deadline = time.monotonic() + within
        with self.arrived:
            while True:
                for message in self.messages:
                    if message.get("type") == kind:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind!r} message within {within:g} s: {self.messages[-5:]}")
                self.arrived.wait(left)

    def close(self) -> None:
        """The page goes: its connection is shut, which also ends the reading thread."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()


def gone(pids: list[int], within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]:
            return True
        time.sleep(0.05)
    return False


class LabHttpTests(SynchronousTestCase):
    def setUp(self):
        self.lab = Lab(self)

    def test_the_page_needs_the_token(self):
        status, body = self.lab.request("GET", "/", token=False)
        self.assertEqual(status, 403)
        self.assertIn("token", json.loads(body)["error"])
        status, body = self.lab.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn(b"<title>poetrynow lab</title>", body)
        self.assertIn(self.lab.token.encode(), body)  # its script and styles carry it
        for path in ("/lab.js", "/lab.css", "/setup"):
            self.assertEqual(self.lab.request("GET", path, token=False)[0], 403, path)
            self.assertEqual(self.lab.request("GET", path)[0], 200, path)
        self.assertEqual(self.lab.request("GET", "/?token=wrong", token=False)[0], 403)

    def test_another_site_is_refused_even_with_the_token(self):
        evil = {"Origin": "http://127.0.0.1:1"}
        status, body = self.lab.request("POST", "/run", {"engines": ["select"]}, headers=evil)
        self.assertEqual(status, 403)
        self.assertIn("another site", json.loads(body)["error"])
        status, body = self.lab.request("POST", "/cancel", headers={"Origin": "https://example.com"})
        self.assertEqual(status, 403)
        own = {"Origin": f"http://127.0.0.1:{self.lab.port}"}
        status, body = self.lab.request("POST", "/cancel", headers=own)
        self.assertEqual((status, json.loads(body)), (200, {"cancelled": False}))  # and no run began

    def test_only_the_lab_s_own_address_and_json_posts_are_taken(self):
        rebound = {"Host": f"attacker.example:{self.lab.port}"}  # a name made to resolve to 127.0.0.1
        status, body = self.lab.request("GET", "/setup", headers=rebound)
        self.assertEqual(status, 403)
        self.assertIn("its own address", json.loads(body)["error"])
        for host in (f"localhost:{self.lab.port}", f"[::1]:{self.lab.port}"):
            self.assertEqual(self.lab.request("GET", "/setup", headers={"Host": host})[0], 200, host)
        form = {"Content-Type": "text/plain"}  # what another site's form may send without asking
        status, body = self.lab.request("POST", "/run", {"engines": ["select"]}, headers=form)
        self.assertEqual(status, 415)
        self.assertIn("must send JSON", json.loads(body)["error"])
        self.assertEqual(self.lab.request("POST", "/cancel", headers=form)[0], 415)
        connection = http.client.HTTPConnection("127.0.0.1", self.lab.port, timeout=30)
        self.addCleanup(connection.close)
        connection.request("GET", f"/?token={self.lab.token}")
        answer = connection.getresponse()
        answer.read()
        self.assertEqual(answer.getheader("Cache-Control"), "no-store")
        self.assertEqual(answer.getheader("X-Frame-Options"), "DENY")
        self.assertIn("frame-ancestors 'none'", answer.getheader("Content-Security-Policy"))
        self.assertEqual(answer.getheader("Referrer-Policy"), "no-referrer")

    def test_json_of_no_setting_s_shape_is_a_400(self):
        deep = "[" * 30_000 + "]" * 30_000  # (under the body's bound, past the parser's depth)
        for body in ('{"engines": [[1]]}', '{"servers": [[["kettle"], {}]]}', '{"delay": [1]}', deep):
            with self.subTest(body=body[:30]):
                connection = http.client.HTTPConnection("127.0.0.1", self.lab.port, timeout=30)
                self.addCleanup(connection.close)
                connection.request(
                    "POST", f"/run?token={self.lab.token}", body=body.encode(),
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                answer = connection.getresponse()
                self.assertEqual(answer.status, 400, answer.read())

    def test_bad_settings_are_a_400_that_says_why(self):
        cases = {
            "unknown engine 'fibers'": {"engines": ["fibers"]},
            "choose at least one engine": {"engines": []},
            "an engine is chosen twice": {"engines": ["select", "select"]},
            "at most 1 s": {"delay": 5},
            "a number of seconds": {"delay": "soon"},
            "bytes a chunk must be from 5": {"servers": [["kettle", 1]]},
            "from 1 to 5 servers": {"servers": [["kettle", 10]] * 6},
            "nosuchpoem": {"servers": [["nosuchpoem", 10]]},
            "no bundled poem '/etc/passwd'": {"servers": [["/etc/passwd", 10]]},
            "no bundled poem '--port'": {"servers": [["--port", 10]]},
            "blocking cannot send a poem to a transform server": {
                "engines": ["blocking", "twisted"],
                "transform": {"cost": 0.1, "kind": "wait", "place": "loop"},
            },
            "at most 2 s in the lab": {"engines": ["twisted"], "transform": {"cost": 9}},
            "one of wait, cpu, not 'sleep'": {"engines": ["twisted"], "transform": {"kind": "sleep"}},
            "one of loop, thread, process": {"engines": ["twisted"], "transform": {"place": "gpu"}},
            "the transform is an object": {"engines": ["twisted"], "transform": "loop"},
        }
        for reason, settings in cases.items():
            with self.subTest(reason=reason):
                status, body = self.lab.request("POST", "/run", settings)
                self.assertEqual(status, 400, body)
                self.assertIn(reason, json.loads(body)["error"])
        status, body = self.lab.request("POST", "/run", None, headers={"Content-Type": "application/json"})
        self.assertEqual(status, 202, body)  # no body at all: the demo's own choice

    def test_a_run_streams_every_event_and_ends_with_the_demo_s_table(self):
        events = self.lab.events()
        self.addCleanup(events.close)
        settings = {"engines": ["blocking", "select"], "delay": 0.01}
        status, body = self.lab.request("POST", "/run", settings)
        self.assertEqual(status, 202, body)
        self.assertEqual(self.lab.request("POST", "/run", settings)[0], 409)  # one run at a time
        table = events.until("table")
        self.assertEqual([row["engine"] for row in table["rows"]], ["blocking", "select"])
        self.assertTrue(all(row["complete"] and row["whole"] == 3 for row in table["rows"]), table)
        self.assertRegex(table["sentence"], r"^blocking took \d+\.\d\d times as long as select")
        summaries = {m["engine"]: m for m in events.messages if m.get("event") == "summary"}
        for row in table["rows"]:  # the table's figures are get-poetry's own
            self.assertEqual(row["measured"], summaries[row["engine"]]["elapsed"])
            self.assertIn(f"{row['measured']:.2f} s", table["table"])
        reads = [m for m in events.messages if m.get("event") == "received"]
        self.assertEqual({m["task"] for m in reads}, {1, 2, 3})
        said = [m for m in events.messages if m["type"] == "event"]
        self.assertTrue(all("poem" not in m for m in said))  # the page gets no poem text
        status, body = self.lab.request("GET", "/trace?engine=select")
        self.assertEqual(status, 200)
        self.assertIn("traceEvents", json.loads(body))
        self.assertEqual(self.lab.request("GET", "/trace?engine=lazy")[0], 404)
        self.assertTrue(gone(children_of(self.lab.child.process.pid)))  # its servers stop after it

    def transform_run(self, place: str) -> tuple[dict, list[dict]]:
        """Part 20 in the lab: three servers of one poem at one pace, each poem sent to a transform
        server whose every transform waits 0.5 s in ``place``; the table and the server's work."""
        events = self.lab.events()
        self.addCleanup(events.close)
        settings = {
            "engines": ["twisted"],
            "servers": [["kettle", 100]] * 3,
            "delay": 0.01,
            "transform": {"cost": 0.5, "kind": "wait", "place": place},
        }
        status, body = self.lab.request("POST", "/run", settings)
        self.assertEqual(status, 202, body)
        table = events.until("table")
        said = events.until("transform")
        self.assertEqual(said["command"], f"transformedpoetry --cost 0.5 --cost-kind wait --cost-in {place}")
        self.assertEqual(table["rows"][0]["whole"], 3, table)  # transformed, byte for byte
        self.assertIn("0.57 s", table["table"])  # the ideal: the slowest server (7 chunks), then 0.5 s
        work = [m for m in events.messages if m["type"] == "work"]
        self.assertEqual(len(work), 3, events.messages[-8:])
        heard = max(m["t"] for m in events.messages if m.get("event") == "transformed")
        fetched = min(m["t"] for m in events.messages if m.get("event") == "received")
        for done in work:  # on the engine's time axis, to within a pipe's latency: after a poem
            self.assertGreater(done["ended"] - done["began"], 0.49)  # came, before the last answer
            self.assertTrue(fetched - 0.1 <= done["began"] and done["ended"] <= heard + 0.1, (done, heard))
        return table, work

    def test_a_transform_in_the_loop_takes_turns_as_part_20_warns(self):
        table, work = self.transform_run("loop")
        self.assertEqual({done["worker"] for done in work}, {"main thread"})
        spans = sorted((done["began"], done["ended"]) for done in work)
        self.assertTrue(all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans)  # one at a time
        self.assertIn("at most 1 at once", table["sentence"])
        self.assertIn("as Part 20 warns", table["sentence"])
        self.assertGreater(table["rows"][0]["measured"], 0.57 + 2 * 0.5 - 0.05)  # two waited their turn

    def test_a_transform_in_threads_overlaps(self):
        table, work = self.transform_run("thread")
        self.assertEqual(len({done["worker"] for done in work}), 3)
        self.assertIn("at most 3 at once: they overlapped", table["sentence"])
        self.assertLess(table["rows"][0]["measured"], 0.57 + 2 * 0.5)

    def test_cancel_ends_the_run_and_every_child(self):
        events = self.lab.events()
        self.addCleanup(events.close)
        self.assertEqual(self.lab.request("POST", "/run", {"engines": ["blocking"], "delay": 1})[0], 202)
        events.until("engine")
        running = children_of(self.lab.child.process.pid)
        self.assertEqual(len(running), 4, running)  # three servers and the client
        self.assertEqual(self.lab.request("POST", "/cancel")[0], 200)
        self.assertEqual(events.until("cancelled")["why"], "cancelled from the page")
        events.until("stopped")  # every child has ended: the next run may start
        self.assertTrue(gone(running), children_of(self.lab.child.process.pid))
        self.assertEqual(self.lab.request("POST", "/run", {"engines": ["select"], "delay": 0})[0], 202)
        self.assertTrue(events.until("table"))  # and the next run goes

    def test_ctrl_c_ends_the_lab_its_run_and_its_children(self):
        events = self.lab.events()
        self.addCleanup(events.close)
        self.assertEqual(self.lab.request("POST", "/run", {"engines": ["blocking"], "delay": 1})[0], 202)
        events.until("engine")
        running = children_of(self.lab.child.process.pid)
        self.assertEqual(len(running), 4, running)
        status = self.lab.child.stop(signal.SIGINT)
        self.assertEqual(status, 130, self.lab.child.stderr)
        self.assertNotIn("Traceback", self.lab.child.stderr)
        self.assertEqual(
            self.lab.child.stderr.splitlines()[-1],
            "poetrynow lab: stopped by SIGINT: its run and its servers are stopped",
        )
        self.assertTrue(gone(running))

    def test_the_last_page_closed_ends_the_run(self):
        events = self.lab.events()
        self.assertEqual(self.lab.request("POST", "/run", {"engines": ["blocking"], "delay": 1})[0], 202)
        events.until("engine")
        running = children_of(self.lab.child.process.pid)
        events.close()  # the page goes; after GONE_AFTER seconds without one, the run is cancelled
        self.assertTrue(gone(running, within=30.0), children_of(self.lab.child.process.pid))
        later = self.lab.events()
        self.addCleanup(later.close)
        self.assertEqual(later.until("cancelled", within=10)["why"], "the page was closed")
