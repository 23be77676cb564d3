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
from poetrynow.collector import collect_seldom
from poetrynow.descriptors import raise_fd_limit
from poetrynow.faults import Faults
from poetrynow.netstring import DEFAULT_MAX_LENGTH
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.servers.common.listen import ListenError, Where
from poetrynow.servers.transform.costs import KINDS, PLACES, QUEUE_PER_WORKER
from poetrynow.twistd_usage import PluginOptions

LISTEN = [
    # No defaults here, so that --listen with either is seen: 0 and localhost, when neither is given.
    ["port", "p", None, "Port to listen on (default 0: a free one; the log says which).", validate.port],
    ["iface", None, None, "Interface to listen on; a name: each of its addresses (default localhost).", None],
    [
        "listen",
        None,
        None,
        "A server endpoint (tcp:10000, unix:/tmp/p.sock) instead of --port/--iface.",
        validate.server_endpoint,
    ],
]


def where(options) -> Where:
    """Where the plugin's server listens: ``--listen``, or ``--port`` and ``--iface``."""
    try:
        return Where.chosen(
            options["port"], options["iface"], options["listen"], bool(options.get("reuse-port"))
        )
    except ValueError as problem:
        raise usage.UsageError(str(problem)) from None


QUIET: list[list[str | None]] = [["quiet", "q", "Log no line per client."]]
PLAIN: list[list[str | None]] = [
    ["plain", None, "The plain edition: Protocol, Factory, timers, Twisted's public names only."]
]
REUSE_PORT: list[list[str | None]] = [
    ["reuse-port", None, "Share the port (SO_REUSEPORT) with other copies of this server; needs --port."]
]


class ServerOptions(PluginOptions):
    """What every plugin takes: where to listen, and --quiet."""

    optParameters = LISTEN
    optFlags = QUIET

    def postOptions(self):
        where(self)  # --listen with --port or --iface is a usage error, found while parsing


class PoemOptions(ServerOptions):
    optParameters = [["poem", None, None, "A bundled poem's name or a file path (required)."]] + LISTEN

    def postOptions(self):
        super().postOptions()
        if not self["poem"]:
            raise usage.UsageError("--poem is required: a bundled poem's name or a file path")


class FastPoetryOptions(PoemOptions):
    optFlags = QUIET + REUSE_PORT + PLAIN


class SlowPoetryOptions(PoemOptions):
    optFlags = QUIET + REUSE_PORT + PLAIN
    optParameters = PoemOptions.optParameters + [
        # No short forms: twistd's own -n (--nodaemon) and -d (--rundir) come first in a reader's eye.
        ["num-bytes", None, 10, "Bytes per chunk.", validate.positive_int],
        ["delay", None, 0.1, "Seconds between chunks.", validate.seconds],
        # The faults, as the command takes them.
        ["jitter", None, 0.0, "Vary each delay by up to this many seconds.", validate.seconds],
        ["rate", None, None, "Pace by bandwidth (bytes a second), not by delay.", validate.rate],
        ["stall-after", None, None, "Bytes; then send nothing...", validate.non_negative_int],
        ["stall-for", None, None, "...for this many seconds (default: for ever).", validate.seconds],
        ["close-after", None, None, "Bytes; then close: a cut-short poem.", validate.non_negative_int],
        ["reset-after", None, None, "Bytes; then a TCP reset.", validate.non_negative_int],
        ["slow-close", None, 0.0, "Seconds to wait before the close.", validate.seconds],
        ["accept-delay", None, 0.0, "Seconds to hold a new connection first.", validate.seconds],
        ["faulty", None, 1.0, "The share of connections the faults apply to.", validate.fraction],
        ["seed", None, None, "The same connections fail the same way.", validate.non_negative_int],
    ]

    def postOptions(self):
        super().postOptions()
        if self["stall-for"] is not None and self["stall-after"] is None:
            raise usage.UsageError("--stall-for needs --stall-after")

    def faults(self) -> Faults:
        return Faults(
            jitter=self["jitter"],
            stall_after=self["stall-after"],
            stall_for=self["stall-for"],
            close_after=self["close-after"],
            reset_after=self["reset-after"],
            slow_close=self["slow-close"],
            accept_delay=self["accept-delay"],
            faulty=self["faulty"],
            seed=self["seed"],
        )


def cost_kind(text: str) -> str:
    """What a transform's cost is: a blocking wait, or CPU work (:mod:`poetrynow.servers.transform.costs`)."""
    return validate.one_of(text, KINDS)


def cost_place(text: str) -> str:
    """Where a transform's work runs: the reactor's thread, a thread pool, a process pool."""
    return validate.one_of(text, PLACES)


class TransformOptions(ServerOptions):
    optFlags = QUIET + [
        ["plain", None, "Taken for scripts: the transform server has one edition, the plain one."]
    ]
    optParameters = LISTEN + [
        ["max-length", None, DEFAULT_MAX_LENGTH, "Largest request in bytes.", validate.positive_int],
        [
            "timeout",
            None,
            60.0,
            "Seconds a client may take to send its request, and the work after it (0: no limit).",
            validate.seconds,
        ],
        # Part 20's warning: what each transform costs, and where it is done (as the command).
        ["cost", None, 0.0, "Seconds of work each transform costs.", validate.seconds],
        [
            "cost-kind",
            None,
            "wait",
            "wait (blocking) or cpu (Python work, holding the GIL).",
            cost_kind,
        ],
        ["cost-in", None, "loop", "Where the work runs: loop, thread or process.", cost_place],
        ["workers", None, None, "Threads (default 10) or processes (one per core).", validate.positive_int],
        [
            "queue",
            None,
            None,
            f"Transforms held at once, at work or waiting (default {QUEUE_PER_WORKER} a worker).",
            validate.positive_int,
        ],
        ["work-log", None, None, "Append a JSON line per transform done.", validate.writable_file],
    ]


class ProxyOptions(ServerOptions):
    synopsis = "[options] [host:]port"
    optFlags = QUIET + REUSE_PORT + PLAIN
    optParameters = LISTEN + [
        ["timeout", None, 0.0, "Give up on an upstream silent this long (0: never).", validate.seconds],
        [
            "max-bytes",
            None,
            64 << 20,
            "The largest poem fetched; nothing larger is cached.",
            validate.positive_int,
        ],
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
        from twisted.internet import reactor

        tree = self._build(options)
        preflight(tree)
        # As the commands do: once running, the collector leaves the connections be, and
        # the descriptor table has room for a burst of them. Once running, not now: twistd
        # forks to daemonize after makeService, and a forked child's table is only as big
        # as its highest open descriptor needs.
        reactor.callWhenRunning(collect_seldom)
        reactor.callWhenRunning(raise_fd_limit)
        return tree


def preflight(tree) -> None:
    """Find what would stop the server starting while twistd can still say so on the terminal.

    twistd calls makeService before it daemonizes or starts logging, and exits with
    a message, as twistd itself does for its own start-up errors ("Another twistd
    server is running"), when makeService calls ``sys.exit(message)``. So the poem
    is read here, the transform server's work log opened for append (and closed
    again), and the place to listen is tried with a plain socket, bound as the
    server's will be: with ``--reuse-port`` it shares the port with the copies already
    serving, and a process that does not share it still makes this one line (a port
    0 always binds, so it is not tried). What could still fail later (another
    process taking the port in between) goes the usual twistd way: a critical log line.
    """
    from poetrynow.servers.common.listen import bind_each, closing_listeners
    from poetrynow.servers.fast.plain import PoetryService
    from poetrynow.servers.transform.server import TransformService
    from poetrynow.servers.transform.worklog import WorkLogError

    prog = os.path.basename(sys.argv[0]) or "twistd"
    try:
        if isinstance(tree.held, PoetryService):
            load_poem(tree.held.poem_name)  # the service reads it again, and logs it, when it starts
        if isinstance(tree.held, TransformService) and tree.held.work_log is not None:
            tree.held.work_log.check()  # the service opens it again when it starts
        where = tree.listener.where
        if where.endpoint is not None or where.port != 0:
            kind = where.description().split(":", 1)[0].lower() if where.endpoint is not None else "tcp"
            if kind in ("tcp", "tcp6", "unix"):
                with closing_listeners(bind_each(where)):
                    pass
    except (PoemNotFound, ListenError, WorkLogError) as problem:
        sys.exit(f"{prog}: error: {problem}")


def _fast(o):
    from poetrynow.servers.deploy import fast_poetry

    return fast_poetry(o["poem"], where(o), log_clients=not o["quiet"], plain=bool(o["plain"]))


def _slow(o):
    from poetrynow.servers.deploy import slow_poetry

    return slow_poetry(
        o["poem"],
        o["num-bytes"],
        o["delay"],
        where(o),
        log_clients=not o["quiet"],
        faults=o.faults(),
        rate=o["rate"],
        plain=bool(o["plain"]),
    )


def _transform(o):
    from poetrynow.servers.deploy import transformed_poetry
    from poetrynow.servers.transform.costs import Cost

    return transformed_poetry(
        where(o),
        o["max-length"],
        o["timeout"] or None,
        log_clients=not o["quiet"],
        cost=Cost(o["cost"], o["cost-kind"]),
        cost_in=o["cost-in"],
        workers=o["workers"],
        work_log=o["work-log"],
        queue=o["queue"],
    )


def _proxy(o):
    from poetrynow.servers.deploy import poetry_proxy

    return poetry_proxy(
        o["upstream"],
        where(o),
        o["timeout"] or None,
        log_clients=not o["quiet"],
        max_bytes=o["max-bytes"],
        plain=bool(o["plain"]),
    )


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
