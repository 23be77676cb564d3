"""The twistd plugins: ``twistd fastpoetry|slowpoetry|transformedpoetry|poetryproxy``.

``src/twisted/plugins/poetrynow_plugins.py`` only names the makers defined here,
so that twistd's plugin scan imports as little as it can. Each maker takes the
options of its command and returns the same
:class:`~poetrynow.servers.deploy.ServerTree` the command runs; twistd adds the
daemon, the pid file and the log file. The server modules are imported in
makeService, after twistd has installed the reactor the user asked for.
"""

from __future__ import annotations

import os
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

from poetrynow import validate
from poetrynow.netstring import DEFAULT_MAX_LENGTH
from poetrynow.poems import PoemNotFound
from poetrynow.servers.listen import ListenError

LISTEN = [
    ["port", "p", 0, "Port to listen on (0: a free one; the log says which).", validate.port],
    ["iface", None, "localhost", "Interface to listen on."],
]
QUIET = [["quiet", "q", "Log no line per client."]]


class PoemOptions(usage.Options):
    optParameters = [["poem", None, None, "A bundled poem's name or a file path (required)."]] + LISTEN
    optFlags = QUIET

    def postOptions(self):
        if not self["poem"]:
            raise usage.UsageError("--poem is required: a bundled poem's name or a file path")


class FastPoetryOptions(PoemOptions):
    pass


class SlowPoetryOptions(PoemOptions):
    optParameters = PoemOptions.optParameters + [
        ["num-bytes", "n", 10, "Bytes per chunk.", validate.positive_int],
        ["delay", "d", 0.1, "Seconds between chunks.", validate.seconds],
    ]


class TransformOptions(usage.Options):
    optParameters = LISTEN + [
        ["max-length", None, DEFAULT_MAX_LENGTH, "Largest request in bytes.", validate.positive_int],
        [
            "timeout",
            None,
            60.0,
            "Seconds a client may take to send its request (0: no limit).",
            validate.seconds,
        ],
    ]


class ProxyOptions(usage.Options):
    synopsis = "[options] [host:]port"
    optParameters = LISTEN + [
        ["timeout", None, 0.0, "Give up on an upstream silent this long (0: never).", validate.seconds],
    ]

    def parseArgs(self, upstream=None):
        if upstream is None:
            raise usage.UsageError("give the [host:]port of the poetry server to proxy")
        try:
            self["upstream"] = validate.address(upstream)
        except ValueError as problem:
            raise usage.UsageError(str(problem)) from None


@implementer(IServiceMaker, IPlugin)
class ServerMaker:
    """One twistd plugin: a name, a line of help, its options, and how to build the tree."""

    def __init__(self, tapname: str, description: str, options, build):
        self.tapname, self.description, self.options, self._build = tapname, description, options, build

    def makeService(self, options):
        one_line_startup_errors()
        return self._build(options)


def one_line_startup_errors() -> None:
    """Print a server's start-up failure as one ``twistd: error: ...`` line, not a traceback.

    twistd lets an exception from startService escape to the top level (after
    removing its pid file and telling a daemon's parent), where Python would print
    a traceback. The failure is already in the log as one critical line; this hook,
    installed by the plugin front end (never by a service), prints the reason once
    on the real stderr. Every other exception keeps Python's usual report.
    """
    previous = sys.excepthook
    if getattr(previous, "poetrynow_hook", False):
        return

    def hook(kind, value, traceback):
        if isinstance(value, (PoemNotFound, ListenError)):
            prog = os.path.basename(sys.argv[0]) or "twistd"
            # The real stderr: twistd has pointed sys.stderr into the log, which has the line.
            print(f"{prog}: error: {value}", file=sys.__stderr__, flush=True)
        else:
            previous(kind, value, traceback)

    hook.poetrynow_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _fast(o):
    from poetrynow.servers.deploy import fast_poetry

    return fast_poetry(o["poem"], o["port"], o["iface"], log_clients=not o["quiet"])


def _slow(o):
    from poetrynow.servers.deploy import slow_poetry

    return slow_poetry(
        o["poem"], o["num-bytes"], o["delay"], o["port"], o["iface"], log_clients=not o["quiet"]
    )


def _transform(o):
    from poetrynow.servers.deploy import transformed_poetry

    return transformed_poetry(o["port"], o["iface"], o["max-length"], o["timeout"] or None)


def _proxy(o):
    from poetrynow.servers.deploy import poetry_proxy

    return poetry_proxy(o["upstream"], o["port"], o["iface"], o["timeout"] or None)


# Descriptions fit twistd's help column on one line.
fastpoetry = ServerMaker(
    "fastpoetry", "poetrynow: the whole poem at once, then close.", FastPoetryOptions, _fast
)
slowpoetry = ServerMaker("slowpoetry", "poetrynow: a poem a few bytes at a time.", SlowPoetryOptions, _slow)
transformedpoetry = ServerMaker(
    "transformedpoetry", "poetrynow: cummingsify and other transforms.", TransformOptions, _transform
)
poetryproxy = ServerMaker(
    "poetryproxy", "poetrynow: a caching, cancelling poetry proxy.", ProxyOptions, _proxy
)
