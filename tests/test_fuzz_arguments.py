"""Any command line gives a result or a one-line usage error with exit 2, never a traceback.

Hypothesis builds argument lists from each command's own options and from odd
text (numbers too large, negative, not ASCII, endpoint-like), and hands them to
the command's parser and the checks its main() makes before it runs anything.
"""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poetrynow.cli import fastpoetry, getpoetry, poetrynow, poetryproxy, slowpoetry, transformedpoetry
from poetrynow.cli.common import where
from tests.time_limit import SynchronousTestCase

COMMANDS = {
    "get-poetry": getpoetry,
    "slowpoetry": slowpoetry,
    "fastpoetry": fastpoetry,
    "transformedpoetry": transformedpoetry,
    "poetry-proxy": poetryproxy,
    "poetrynow": poetrynow,
}

ODD = st.sampled_from(
    ["0", "-1", "1e10", "1e400", "nan", "inf", "65536", "10000", "\u0661\u0662", "tcp:0", "unix:/tmp/x",
     "tcp6:0:interface=\\:\\:1", "[::1]:7", "host:", ":", "", " ", "all", "blocking,blocking", "kettle",
     "--", "-", "select", "twisted", "carrier-pigeon:1", "\x00", "ssl:443"]
)  # fmt: skip


def words_for(module) -> st.SearchStrategy[list[str]]:
    parser = module.parser()
    options = sorted({s for action in parser._actions for s in action.option_strings})
    subcommands = ["demo", "poems"] if module is poetrynow else []
    word = st.one_of(st.sampled_from(options + subcommands), ODD, st.text(max_size=12))
    return st.lists(word, max_size=8)


def outcome(module, argv: list[str]) -> tuple[int, str]:
    """Parse as the command would and make its checks; 0 when it would go on to run."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            p = module.parser()
            args = p.parse_args(argv)
            if module is getpoetry and (problem := getpoetry.settings_problem(args)):
                p.error(problem)
            if hasattr(args, "listen"):
                where(p, args)
        except SystemExit as stop:
            return int(stop.code or 0), err.getvalue()
    return 0, err.getvalue()


class FuzzTests(SynchronousTestCase):
    def check(self, module, argv: list[str]) -> None:
        status, err = outcome(module, argv)
        self.assertIn(status, (0, 2), (argv, err))
        self.assertNotIn("Traceback", err)
        if status == 2:
            last = err.strip().split("\n")[-1]
            self.assertIn(": error: ", last, (argv, err))


def _fuzz_test(name: str, module):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(argv=words_for(module))
    def test(self, argv):
        self.check(module, argv)

    test.__name__ = f"test_{name.replace('-', '_')}_never_crashes"
    return test


for _name, _module in COMMANDS.items():
    setattr(FuzzTests, f"test_{_name.replace('-', '_')}_never_crashes", _fuzz_test(_name, _module))
