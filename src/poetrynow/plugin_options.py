"""The options of each twistd plugin, checked as the commands check theirs.

Apart from :mod:`poetrynow.plugins` (the makers), because a reader looking for
"what does ``twistd slowpoetry`` accept" wants the flags, and one looking for "what
does twistd run" wants the tree: each table here words its errors through
:mod:`poetrynow.validate`, as the commands do.
"""

from __future__ import annotations

from twisted.python import usage

from poetrynow import validate
from poetrynow.faults import Faults
from poetrynow.netstring import DEFAULT_MAX_LENGTH
from poetrynow.servers.common.listen import Where
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
