"""Every command the README (and the docs it leads to) shows exists and its arguments parse, as written;
the README's own commands are run.

The code blocks are read from README.md; each line that runs one of the project's
commands (or twistd with its plugins) is handed to that command's own parser,
nothing more: no server starts. A line a parser refuses would fail a reader who
copies it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from poetrynow.cli import fastpoetry, getpoetry, poetrynow, poetryproxy, slowpoetry, transformedpoetry
from tests.time_limit import SynchronousTestCase

README = Path(__file__).resolve().parent.parent / "README.md"
PARSERS = {
    "get-poetry": getpoetry.parser,
    "slowpoetry": slowpoetry.parser,
    "fastpoetry": fastpoetry.parser,
    "transformedpoetry": transformedpoetry.parser,
    "poetry-proxy": poetryproxy.parser,
    "poetrynow": poetrynow.parser,
}
OTHERS = {"make", "twistd", "nc", "kill", "grep", "python3", "pip", "curl"}


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced block (any language)."""
    blocks: list[list[str]] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    return blocks


#: The README and the pages of reference it leads to: every command any of them shows.
PAGES = [
    README,
    *(README.parent / "docs" / f"{name}.md" for name in
      ("experiment", "commands", "pictures", "part20", "faults", "deployment", "testing", "lab")),
]  # fmt: skip


def command_lines(pages: list[Path] = PAGES) -> list[list[str]]:
    """Each command line in the pages' code blocks, as words (prompt, ``.venv/bin/``, comment and
    ``&`` dropped)."""
    found = []
    for page in pages:
        found.extend(page_commands(page.read_text(encoding="utf-8")))
    return found


def page_commands(text: str) -> list[list[str]]:
    found = []
    for block in code_blocks(text):
        for line in block:
            line = line.removeprefix("$ ").strip().removeprefix(".venv/bin/")
            if not line or line.split()[0] not in PARSERS.keys() | OTHERS:
                continue  # output, Python, or prose in a block
            words = shlex.split(line, comments=True)
            if words and words[-1] == "&":
                words.pop()
            found.append(words)
    return found


class ReadmeCommandsTests(SynchronousTestCase):
    def test_the_readme_has_commands_to_check(self):
        names = {words[0] for words in command_lines()}
        self.assertTrue(set(PARSERS) <= names | {"poetry-proxy"}, names)
        self.assertIn("twistd", names)

    def test_every_project_command_parses(self):
        for words in command_lines():
            if words[0] not in PARSERS:
                continue
            with self.subTest(line=" ".join(words)):
                err = io.StringIO()
                try:
                    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                        PARSERS[words[0]]().parse_args(words[1:])
                except SystemExit as stop:
                    self.fail(f"{' '.join(words)}: exit {stop.code}: {err.getvalue().strip()}")

    def test_every_twistd_line_parses(self):
        from twisted.scripts.twistd import ServerOptions

        for words in command_lines():
            if words[0] != "twistd":
                continue
            with self.subTest(line=" ".join(words)):
                if "-y" in words:  # a tac file: it must exist
                    self.assertTrue((README.parent / words[words.index("-y") + 1]).is_file())
                ServerOptions().parseOptions(words[1:])


def readme_section(title: str) -> str:
    """The README's text under ``## title``, up to the next section."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def as_run(words: list[str], ports: dict[str, str]) -> list[str]:
    """A README line, run as a test must: each port it names replaced by the one the test's own
    server (on port 0) has, and the command run from this checkout's environment."""
    from tests.support import command

    name, *args = [ports.get(word, word) for word in words]
    for old, new in ports.items():
        for host in ("127.0.0.1", "localhost"):
            args = [arg.replace(f"{host}:{old}", f"{host}:{new}") for arg in args]
    return (command(name) if name in PARSERS else [name]) + args


def tls_line(words: list[str]) -> bool:
    """Whether a README curl belongs to the example of the TLS relay ``web`` (and its HTTP toxic)."""
    return any("tls" in word or "cacert" in word or "/proxies/web" in word for word in words)


class ReadmeRunsTests(SynchronousTestCase):
    """The README's first screen, run as a reader runs it: the servers with get-poetry, and the
    relay with curl. Ports are the test's own (port 0, each named as the commands print it);
    the servers send every chunk at once (--delay 0) so that a test does not wait 23 s."""

    def setUp(self):
        self.tries = page_commands(readme_section("Three things to try next"))
        self.tries += page_commands(README.read_text(encoding="utf-8").split("\n## ", 1)[0])  # the top's
        self.assertGreaterEqual(len(self.tries), 8, self.tries)

    def serve(self) -> tuple[dict[str, str], list[str]]:
        import re

        from tests.support import Child

        [serve] = [words for words in self.tries if words[:2] == ["poetrynow", "serve"]]
        child = Child(as_run(serve, {}) + ["--ports", "0,0,0", "--delay", "0"])
        self.addCleanup(child.stop)
        lines = [child.out.next_line() for _ in range(3)]
        found = [re.fullmatch(r"Serving (\w+) on port (\d+)\.\n", line) for line in lines]
        self.assertTrue(all(found), lines)
        ports = {str(10000 + n): match.group(2) for n, match in enumerate(found) if match}
        return ports, [match.group(1) for match in found if match]

    def test_the_servers_and_both_clients(self):
        from poetrynow.poems import load_poem

        ports, poems = self.serve()
        sizes = [len(load_poem(poem).data) for poem in poems]
        clients = [words for words in self.tries if words[0] == "get-poetry" and "20000" not in words]
        self.assertEqual(len(clients), 2, clients)
        for words in clients:
            with self.subTest(line=" ".join(words)):
                ran = subprocess.run(as_run(words, ports), capture_output=True, text=True, timeout=120)
                self.assertEqual(ran.returncode, 0, ran.stderr)
                self.assertIn("Got 3 poems in", ran.stdout)
                for task, size in enumerate(sizes, 1):
                    self.assertRegex(ran.stdout, rf"Task {task}: (got )?{size} bytes of poetry")

    def test_the_relay_driven_by_curl(self):
        import re

        from poetrynow.poems import load_poem
        from tests.support import Child, free_port

        if shutil.which("curl") is None:
            self.skipTest("needs curl (Debian's curl package)")
        ports, poems = self.serve()
        [faults] = [words for words in self.tries if words[:2] == ["poetrynow", "faults"]]
        relay = Child(as_run(faults, {}) + ["--api", "127.0.0.1:0"])
        self.addCleanup(relay.stop)
        api = re.fullmatch(r"Faults API on http://127\.0\.0\.1:(\d+)/\n", relay.out.next_line())
        self.assertIsNotNone(api)
        assert api is not None
        ports = {**ports, "8474": api.group(1), "20000": str(free_port())}
        curls = [words for words in self.tries if words[0] == "curl" and not tls_line(words)]
        self.assertEqual(len(curls), 2, curls)
        for words in curls:
            with self.subTest(line=" ".join(words)):
                for _ in range(5):  # a port found free may be taken before the relay listens on it
                    ran = subprocess.run(as_run(words, ports), capture_output=True, text=True, timeout=60)
                    if "already in use" not in ran.stdout:
                        break
                    ports["20000"] = str(free_port())
                self.assertEqual(ran.returncode, 0, ran.stderr)
                self.assertNotIn('"error"', ran.stdout)
        [through] = [words for words in self.tries if words[0] == "get-poetry" and "20000" in words]
        ran = subprocess.run(as_run(through, ports), capture_output=True, text=True, timeout=120)
        self.assertEqual(ran.returncode, 0, ran.stderr)
        size = len(load_poem(poems[0]).data)
        self.assertIn(f"Task 1: got {size} bytes of poetry", ran.stdout)
        took = re.search(r"Got 1 poems? in 0:00:(\d+\.\d+)", ran.stdout)
        self.assertIsNotNone(took, ran.stdout)
        assert took is not None
        self.assertGreaterEqual(float(took.group(1)), 0.5)  # the latency toxic held it

    def test_the_tls_relay_driven_by_curl(self):
        import http.server
        import re
        import threading

        from poetrynow.relay.authority import missing
        from tests.support import Child, free_port

        if shutil.which("curl") is None or missing() is not None:
            self.skipTest("needs curl (Debian's curl package) and the tls extra")
        page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=page.serve_forever, daemon=True).start()
        self.addCleanup(page.server_close)
        self.addCleanup(page.shutdown)
        [faults] = [words for words in self.tries if words[:2] == ["poetrynow", "faults"]]
        relay = Child(as_run(faults, {}) + ["--api", "127.0.0.1:0"])
        self.addCleanup(relay.stop)
        api = re.fullmatch(r"Faults API on http://127\.0\.0\.1:(\d+)/\n", relay.out.next_line())
        assert api is not None
        ports = {"8474": api.group(1), "8080": str(page.server_address[1]), "20443": str(free_port())}
        curls = [words for words in self.tries if words[0] == "curl" and tls_line(words)]
        self.assertEqual(len(curls), 4, curls)
        pages = []
        folder = tempfile.mkdtemp(prefix="poetrynow-test-")
        self.addCleanup(shutil.rmtree, folder, True)
        for words in curls:
            with self.subTest(line=" ".join(words)):
                argv, into = as_run(words, ports), None
                if ">" in argv:  # (the shell's redirection, done here)
                    argv, into = argv[: argv.index(">")], argv[argv.index(">") + 1]
                ran = subprocess.run(argv, capture_output=True, timeout=60, cwd=folder)
                self.assertEqual(ran.returncode, 0, ran.stderr)
                self.assertNotIn(b'"error"', ran.stdout)
                if into is not None:
                    with open(os.path.join(folder, into), "wb") as f:
                        f.write(ran.stdout)
                if "--cacert" in argv:
                    pages.append(ran.stdout)
        self.assertEqual(len(pages), 1)
        self.assertIn(b"<html", pages[0].lower())  # the upstream's page, through TLS

    def test_the_make_targets_run_the_commands_the_readme_says(self):
        # make demo runs poetrynow demo (tests/test_cli.py runs it, and counts its lines); make
        # test is what .ci/run runs. Here: the Makefile's recipes are those commands.
        makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
        self.assertRegex(makefile, r"(?m)^demo: .*\n\t\$\(BIN\)/poetrynow demo$")
        self.assertRegex(makefile, r"(?m)^test: .*\n\t\$\(BIN\)/python -m pytest ")
        self.assertIn("make test", (README.parent / ".ci" / "run").read_text(encoding="utf-8"))

    def test_the_lab(self):
        import re

        from tests.support import Child

        [lab] = [words for words in self.tries if words[:2] == ["poetrynow", "lab"]]
        child = Child(as_run(lab, {}) + ["--port", "0", "--no-browser"])
        self.addCleanup(child.stop)
        said = re.fullmatch(r"Lab on (http://127\.0\.0\.1:\d+/\?token=[\w-]+)\n", child.out.next_line())
        self.assertIsNotNone(said)
        assert said is not None
        from urllib.request import urlopen

        with urlopen(said.group(1), timeout=30) as page:
            self.assertIn(b"<title>poetrynow lab</title>", page.read())
        self.assertTrue((README.parent / "docs" / "lab.png").is_file())  # the README's screenshot

    def test_every_engine_and_part_20(self):
        demos = [words for words in page_commands(readme_section("What `make demo` shows"))]
        demos = [words for words in demos if words[:2] == ["poetrynow", "demo"]]
        self.assertEqual([words[2] for words in demos], ["--engines", "--transform-cost"])
        faster = {"--engines": ["--delay", "0", "--no-timeline"], "--transform-cost": ["--no-timeline"]}
        for words in demos:
            with self.subTest(line=" ".join(words)):
                args = list(words)
                if args[2] == "--transform-cost":
                    args[3] = "0.05"  # (the README's 0.5 s, a tenth: the same six runs)
                with tempfile.TemporaryDirectory() as where:
                    ran = subprocess.run(
                        as_run(args, {}) + faster[args[2]],
                        capture_output=True,
                        text=True,
                        timeout=100,  # (both in the test's 240 s; a demo killed takes its servers along)
                        cwd=where,
                        stdin=subprocess.DEVNULL,
                    )
                self.assertEqual(ran.returncode, 0, ran.stderr)
                if args[2] == "--engines":
                    self.assertIn("rank  ", ran.stdout)
                self.assertNotIn("Traceback", ran.stderr)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    import re

    text = heading.strip().lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


class LinkTests(SynchronousTestCase):
    def test_every_link_between_the_pages_leads_somewhere(self):
        import re

        pages = [*PAGES, *(README.parent / "docs").glob("*.md")]
        for page in pages:
            text = page.read_text(encoding="utf-8")
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if target.startswith(("http://", "https://", "mailto:")):
                    continue
                path, _, fragment = target.partition("#")
                where = (page.parent / path).resolve() if path else page
                with self.subTest(page=page.name, link=target):
                    self.assertTrue(where.exists(), f"{page.name}: {target} leads nowhere")
                    if fragment and where.suffix == ".md":
                        headings = [
                            anchor(line)
                            for line in where.read_text(encoding="utf-8").splitlines()
                            if line.startswith("#")
                        ]
                        self.assertIn(fragment, headings, f"{page.name}: no heading for #{fragment}")
