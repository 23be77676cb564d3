"""Every command the README shows exists and its arguments parse, as written.

The code blocks are read from README.md; each line that runs one of the project's
commands (or twistd with its plugins) is handed to that command's own parser,
nothing more: no server starts. A line a parser refuses would fail a reader who
copies it.
"""

from __future__ import annotations

import contextlib
import io
import shlex
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
OTHERS = {"make", "twistd", "nc", "kill", "grep", "python3", "pip"}


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


def command_lines() -> list[list[str]]:
    """Each command line in the README's code blocks, as words (prompt, comment and ``&`` dropped)."""
    found = []
    for block in code_blocks(README.read_text(encoding="utf-8")):
        for line in block:
            line = line.removeprefix("$ ").strip()
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
