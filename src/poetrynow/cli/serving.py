"""Running a Twisted server from a command: start its service tree, log, run.

Every Twisted server command goes through :func:`serve` with the same service
tree twistd would run (:mod:`poetrynow.servers.deploy`), so they share the same
one-line errors (a missing poem is a usage error, found before anything
listens), the listening line printed first and flushed, plain log lines on
stdout, and a clean exit on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner
from zope.interface import provider

from poetrynow.cli.common import FAILED, OK, USAGE, error, stopped
from poetrynow.clients.reactors import stop_reactor, watching
from poetrynow.collector import collect_seldom
from poetrynow.poems import PoemNotFound
from poetrynow.servers.common.listen import ListenError
from poetrynow.servers.common.ports import ACCEPT_LOOP_NAMESPACES
from poetrynow.servers.common.startup import StartError
from poetrynow.stopping import Interrupted, interrupt_on_signals, loop_stopped_by_signals


def event_text(event: dict) -> str:
    """The event's text, as Twisted's formatEvent gives it, for less.

    A server logs a line per client; formatting it was a fifth of what a poem
    cost. ``str.format_map`` renders the same ``{name}`` fields (and attributes,
    keys, conversions and specs); only Twisted's own ``{name()}`` calls and what
    will not format go to formatEvent.
    """
    fmt = event.get("log_format")
    if fmt and "()" not in fmt:
        try:
            return fmt.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


class StartUpLog:
    """Begin the log now, printing nothing before :meth:`started`; then what ``keep`` chose.

    A command prints its listening line first (or one error line): the events of
    its start-up are dropped, or held until that line is out, and Twisted prints
    none of them on stderr meanwhile.
    """

    def __init__(self, level: LogLevel, reactor, keep: Callable[[dict], bool]):
        self.observe = plain_observer(level, flush_soon=lambda flush: reactor.callLater(0, flush))
        self.live = False
        self.held: list[dict] = []

        @provider(ILogObserver)
        def after_start(event: dict) -> None:
            if self.live:
                self.observe(event)
            elif keep(event):
                self.held.append(event)

        globalLogBeginner.beginLoggingTo([after_start], discardBuffer=True, redirectStandardIO=False)

    def started(self) -> None:
        """The listening line is out: what was held, then every event as it comes."""
        self.live = True
        held, self.held = self.held, []
        for event in held:
            self.observe(event)


def plain_observer(min_level: LogLevel, out=None, flush_soon=None):
    """A log observer that prints each event's text alone, one line.

    Each line is flushed at once, or, given ``flush_soon`` (which schedules a
    call, as ``reactor.callLater(0, f)`` does), once per pass of the event loop
    for all the lines of that pass: a write per line costs a poem's worth of CPU.
    Out of descriptors, the ports' own notice is the one line, whatever ``--quiet``
    says (a warning), however Twisted words its line per connection.
    """

    pending = [False]
    # Sets of levels: LogLevel's own comparisons are Python methods, called twice a line.
    shown = frozenset(level for level in LogLevel.iterconstants() if level >= min_level)
    loud = frozenset(level for level in LogLevel.iterconstants() if level >= LogLevel.warn)
    grave = frozenset(level for level in LogLevel.iterconstants() if level >= LogLevel.error)

    def flush() -> None:
        pending[0] = False
        (out or sys.stdout).flush()

    def observe(event):
        level = event.get("log_level", LogLevel.info)
        if level not in shown:
            return
        namespace = event.get("log_namespace", "")
        # Twisted's own info lines ("(TCP Port N Closed)", "Main loop terminated.") are
        # for a log file; on the terminal the server says what it did in its own words.
        # So are its accept loop's, a line per connection, though they bear our ports' names.
        if level not in loud and not namespace.startswith("poetrynow"):
            return
        if namespace in ACCEPT_LOOP_NAMESPACES and level not in grave:
            return
        text = event_text(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}"
            if level == LogLevel.critical:
                # A bug (logged by log.failure): its traceback, so that it can be found and reported.
                text = f"{text}\n{failure.getTraceback().rstrip()}"
        stream = out or sys.stdout
        stream.write(text + "\n")
        if flush_soon is None:
            stream.flush()
        elif not pending[0]:
            pending[0] = True
            flush_soon(flush)

    return observe


def serve(
    prog: str, *trees, quiet: bool = False, verbose: bool = False, stopped_what: str | None = None
) -> int:
    """Start the ``trees`` (:class:`~poetrynow.servers.deploy.ServerTree`), then run the reactor.

    Each tree's listening line is printed as it starts; if one cannot start, the
    ones already started are stopped and the reason is the one line. A signal
    stops them all (``stopped_what``: what the stop's line says was stopped, for a server
    that cuts no poem short).
    """
    from twisted.internet import reactor

    # Logging begins before the tree starts, so that its start-up lines (and a
    # critical "Cannot start") are dropped here rather than printed on stderr by
    # Twisted: a command prints its listening line first, or one error line.
    level = LogLevel.warn if quiet else (LogLevel.debug if verbose else LogLevel.info)
    # Warnings while starting (the fast edition declined) come after the listening line.
    log = StartUpLog(level, reactor, keep=lambda event: event.get("log_level") == LogLevel.warn)
    # The signals are ours before the listening line is out: a script that reads the
    # line and stops the server at once gets the same clean stop as a later one. Outside
    # the loop, a blocking program's handlers: after the loop, a second signal finishes
    # the same stop instead of raising wherever it lands (stopping.py).
    interrupt_on_signals()
    call_in_loop = reactor.callFromThread  # type: ignore[attr-defined]  # typed as any reactor
    # A stop that is already under way is not stopped again (a signal's stop may land late).
    with loop_stopped_by_signals(call_in_loop, lambda: stop_reactor(reactor), watching(reactor)) as caught:
        running: list = []
        for tree in trees:
            try:
                tree.startService()
            except (PoemNotFound, ListenError, StartError) as problem:
                for other in running:
                    other.stopService()
                return error(prog, str(problem), USAGE if isinstance(problem, PoemNotFound) else FAILED)
            running.append(tree)
            print(tree.listener.listening_line(), flush=True)
        log.started()
        collect_seldom()  # a server's thousands of connections are not garbage
        for tree in trees:
            reactor.addSystemEventTrigger("before", "shutdown", tree.stopService)
        reactor.run(installSignalHandlers=False)  # type: ignore[call-arg]
    if not caught:
        return OK
    cut = sum(getattr(tree.listener.factory, "cut_short", 0) for tree in trees)
    what = f"{cut} client{'s' if cut != 1 else ''} cut short mid-poem" if cut else "no client was cut short"
    what = stopped_what or what
    return stopped(prog, Interrupted(caught[0]), what)
