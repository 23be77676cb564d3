"""What each engine family prints, and when: the articles' clients, one style each.

Part 2's two clients set the pattern: the blocking one announces each task and
gives its download time; the select one prints a line per read, a line per
closed connection and the sizes at the end. The Twisted client of Parts 17-18
prints the select lines and each poem; Part 20's Erlang client a line per chunk
and each poem with its time; Part 21's Haskell client the poems line by line, in
command-line order. The words themselves are in :mod:`poetrynow.report.lines`.
"""

from __future__ import annotations

from poetrynow.events import Finished, PoemLine, Received, Started
from poetrynow.report.lines import downloaded_line, finished_line, received_line, size_line, started_line
from poetrynow.report.reporter import Reporter, Summary


class BlockingStyle(Reporter):
    """Part 2's blocking client: each task announced, then its size and download time."""

    def on_started(self, e: Started) -> None:
        self.say(started_line(e))

    def on_finished(self, e: Finished) -> None:
        self.say(downloaded_line(e, self.since_start(e)))


class SelectStyle(Reporter):
    """Part 2's select client: a line per read, a line per close, the sizes at the end."""

    def on_received(self, e: Received) -> None:
        self.say(received_line(e))

    def on_finished(self, e: Finished) -> None:
        self.say(finished_line(e))

    def closing(self, summary: Summary) -> None:
        for e in summary.finished:
            self.say(size_line(e))
        super().closing(summary)


class TwistedStyle(SelectStyle):
    """Client 7.0/8.0: the select lines, each poem printed as it is done."""

    def on_finished(self, e: Finished) -> None:
        super().on_finished(e)
        if self.print_poems:
            self.say(e.text.rstrip("\n"))


class ActorsStyle(Reporter):
    """Part 20: a line per chunk; each poem with its download time, as the main process gets it."""

    def on_received(self, e: Received) -> None:
        self.say(received_line(e))

    def on_finished(self, e: Finished) -> None:
        self.say(downloaded_line(e, self.since_start(e)))
        if self.print_poems:
            self.say(e.text.rstrip("\n"))


class LazyStyle(Reporter):
    """Part 21: a line per line of poetry, and each poem's lines when it is its turn."""

    def on_received(self, e: Received) -> None:
        self.say(received_line(e))

    def on_poemline(self, e: PoemLine) -> None:
        if self.print_poems:
            self.write(e.text if e.text.endswith("\n") else e.text + "\n")
