"""The twistd plugins: ``twistd fastpoetry|slowpoetry|transformedpoetry|poetryproxy``.

``src/twisted/plugins/poetrynow_plugins.py`` only names the makers defined here,
so that twistd's plugin scan imports as little as it can. Each maker takes the
options of its command and returns the same
:class:`~poetrynow.servers.deploy.ServerTree` the command runs; twistd adds the
daemon, the pid file and the log file. The server modules are imported in
makeService, after twistd has installed the reactor the user asked for. Each
plugin's flags are in :mod:`poetrynow.plugin_options`.
"""

from __future__ import annotations

import os
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer

from poetrynow.collector import collect_seldom
from poetrynow.descriptors import raise_fd_limit
from poetrynow.plugin_options import (
    FastPoetryOptions,
    ProxyOptions,
    SlowPoetryOptions,
    TransformOptions,
    where,
)
from poetrynow.poems import PoemNotFound, load_poem
from poetrynow.servers.common.listen import ListenError


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
