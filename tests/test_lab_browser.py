"""The lab's page in a real browser: headless Chromium (Debian's), driven by Selenium, against a
real lab process.

``make test`` installs chromium and chromium-driver with apt where it can (as root); where
it cannot, or without selenium (the ``browser`` extra), these tests skip with one line that
says which. Nothing the page needs comes from elsewhere: the browser is started with its
networking beyond 127.0.0.1 turned off, and the page must still work.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.test_lab import Lab, children_of, gone
from tests.time_limit import SynchronousTestCase

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Where a screenshot of a run is left, for the README, when this names a file.
SCREENSHOT = os.environ.get("POETRYNOW_LAB_SCREENSHOT")
#: And of a Part 20 run, for docs/lab.md.
PART20_SCREENSHOT = os.environ.get("POETRYNOW_LAB_PART20_SCREENSHOT")


def why_not() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium: pip install 'poetrynow[browser]'"
    for path, package in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"needs Debian's {package} (as root: apt-get install chromium chromium-driver)"
    return None


@unittest.skipIf(why_not() is not None, why_not() or "")
class LabBrowserTests(SynchronousTestCase):
    def setUp(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.lab = Lab(self)
        profile = tempfile.mkdtemp(prefix="poetrynow-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1280,1000", f"--user-data-dir={profile}",
        ):  # fmt: skip
            options.add_argument(flag)
        self.browser = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.addCleanup(self.browser.quit)
        self.browser.set_page_load_timeout(30)

    def wait(self, what, within: float = 60.0, every: float = 0.05):
        """``what()``'s first true value, waiting at most ``within`` seconds for it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(every)
        said = [self.browser.find_element("id", name).text for name in ("status", "problem")]
        raise AssertionError(f"not within {within:g} s; the page says {said}")

    def status(self) -> str:
        return self.browser.find_element("id", "status").text

    def choose(self, engines: list[str], delay: float) -> None:
        by = "css selector"
        self.wait(lambda: self.browser.find_elements(by, "input[name=engine]"))
        for box in self.browser.find_elements(by, "input[name=engine]"):
            if box.is_selected() != (box.get_attribute("value") in engines):
                box.click()
        field = self.browser.find_element("id", "delay")
        field.clear()
        field.send_keys(str(delay))

    def lanes(self, engine: str) -> int:
        return len(self.browser.find_elements("css selector", f'.panel[data-engine="{engine}"] g.lane'))

    def test_the_page_needs_its_token(self):
        self.browser.get(self.lab.url.split("?")[0])
        self.assertIn("token", self.browser.find_element("tag name", "body").text)
        self.browser.get(self.lab.url)
        self.assertEqual(self.browser.title, "poetrynow lab")
        boxes = self.wait(lambda: self.browser.find_elements("css selector", "input[name=engine]"))
        self.assertEqual(len(boxes), 7)

    def test_a_run_draws_its_lanes_while_it_goes_and_ends_with_the_table(self):
        self.browser.get(self.lab.url)
        self.choose(["blocking", "select"], delay=0.04)
        self.browser.find_element("id", "run").click()
        self.wait(lambda: self.lanes("blocking") >= 1)
        first = self.browser.get_screenshot_as_png()
        self.wait(lambda: self.lanes("blocking") == 3 and self.status().startswith("running"))
        # Real reads arrive meanwhile: the picture changes before the run ends.
        second = self.wait(lambda: (shot := self.browser.get_screenshot_as_png()) != first and shot)
        self.assertFalse(self.browser.find_element("id", "table").text)  # not ended yet
        self.assertNotEqual(first, second)
        self.wait(lambda: self.status() == "done", within=120)
        self.assertEqual((self.lanes("blocking"), self.lanes("select")), (3, 3))  # a lane per task
        table = self.browser.find_element("id", "table").text
        self.assertRegex(table, r"rank +engine +measured +ideal")
        rows = re.findall(r"^\s*(\d)\s+(\w+)\s+(\d+\.\d\d) s", table, re.M)
        self.assertEqual([(rank, engine) for rank, engine, _ in rows], [("1", "select"), ("2", "blocking")])
        for _, engine, measured in rows:  # the page's figures are the command's: its panel says the same
            title = self.browser.find_element("css selector", f'.panel[data-engine="{engine}"] h2').text
            self.assertTrue(title.endswith(f": {measured} s") or measured in title, title)
        sentence = self.browser.find_element("id", "sentence").text
        self.assertRegex(sentence, r"^blocking took \d+\.\d\d times as long as select")
        links = self.browser.find_elements("css selector", "#traces a")
        self.assertEqual([link.text for link in links], ["blocking's trace", "select's trace"])
        if SCREENSHOT:
            self.browser.save_screenshot(SCREENSHOT)

    def test_a_transform_cost_draws_the_server_s_workers_beside_the_tasks(self):
        from selenium.webdriver.support.select import Select

        by = "css selector"
        self.browser.get(self.lab.url)
        self.wait(lambda: self.browser.find_elements(by, ".server-row"))
        for row in self.browser.find_elements(by, ".server-row"):  # one poem, one pace: they come together
            Select(row.find_element(by, ".poem")).select_by_value("kettle")
            bytes_field = row.find_element(by, ".num-bytes")
            bytes_field.clear()
            bytes_field.send_keys("100")
        self.browser.find_element("id", "xform-on").click()
        cannot = {
            box.get_attribute("value")
            for box in self.browser.find_elements(by, "input[name=engine]:disabled")
        }
        self.assertEqual(cannot, {"blocking", "select"})  # they send no poem on
        self.choose(["twisted"], delay=0.02)
        cost = self.browser.find_element("id", "cost")
        cost.clear()
        cost.send_keys("0.4")
        Select(self.browser.find_element("id", "place")).select_by_value("loop")
        self.browser.find_element("id", "run").click()
        self.wait(lambda: self.status() == "done", within=120)
        panel = '.panel[data-engine="twisted"]'
        workers = self.browser.find_elements(by, f"{panel} g.worker")
        self.assertEqual([w.get_attribute("data-worker") for w in workers], ["main thread"])
        self.assertEqual(len(self.browser.find_elements(by, f"{panel} g.worker rect.work")), 3)
        self.assertEqual(len(self.browser.find_elements(by, f"{panel} g.lane rect.xform")), 3)  # one a task
        self.assertEqual(self.lanes("twisted"), 3)
        self.assertRegex(
            self.browser.find_element("id", "table").text, r"twisted +\d+\.\d\d s +0\.54 s .* 3/3"
        )
        sentence = self.browser.find_element("id", "sentence").text
        self.assertIn(
            "3 transforms of 0.4 s (a blocking wait) in its reactor's thread, at most 1 at once", sentence
        )
        if PART20_SCREENSHOT:
            self.browser.save_screenshot(PART20_SCREENSHOT)

    def test_cancel_from_the_page_ends_the_run_and_its_children(self):
        self.browser.get(self.lab.url)
        self.choose(["blocking"], delay=1)
        self.browser.find_element("id", "run").click()
        self.wait(lambda: self.status().startswith("running"))
        running = children_of(self.lab.child.process.pid)
        self.assertEqual(len(running), 4, running)
        self.browser.find_element("id", "cancel").click()
        self.wait(lambda: self.status() == "cancelled")
        self.assertTrue(gone(running))

    def test_a_bad_setting_is_said_on_the_page(self):
        self.browser.get(self.lab.url)
        self.choose([], delay=0.1)
        self.browser.find_element("id", "run").click()
        problem = self.wait(lambda: self.browser.find_element("id", "problem").text)
        self.assertEqual(problem, "choose at least one engine")

    def test_a_page_of_another_site_cannot_start_a_run(self):
        lab = self.lab
        target = f"http://127.0.0.1:{lab.port}/run?token={lab.token}"
        script = (
            f"<script>fetch('{target}', {{method: 'POST', body: '{{}}'}})"
            ".then(r => document.title = 'answered ' + r.status)"
            ".catch(() => document.title = 'refused');</script>"
        ).encode()

        class Foreign(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(script)

            def log_message(self, *args):
                pass

        foreign = ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
        self.addCleanup(foreign.server_close)
        threading.Thread(target=foreign.serve_forever, daemon=True).start()
        self.addCleanup(foreign.shutdown)
        self.browser.get(f"http://127.0.0.1:{foreign.server_address[1]}/")
        self.wait(lambda: self.browser.title in ("refused", "answered 403"))
        _, body = lab.request("POST", "/cancel")
        self.assertEqual(body, b'{"cancelled": false}')  # no run was started
