"""``--json``: one JSON object per event instead of the articles' lines, then a summary.

For programs that read a run rather than people: every engine's events, in one
shape, with times in seconds since the run began. The failure lines still go to
stderr, as in every style.
"""

from __future__ import annotations

import json

from poetrynow.events import (
    Event,
    Failed,
    Finished,
    PoemLine,
    Received,
    Restarted,
    Transformed,
    TransformFailed,
)
from poetrynow.report.reporter import Reporter, Summary


def event_json(e: Event, since: float) -> dict:
    """A JSON-ready dict for one event; times are seconds since the run began."""
    record: dict = {"event": e.kind, "task": e.task, "address": str(e.address), "t": round(e.t - since, 6)}
    if e.thread:
        record["thread"] = e.thread
    if e.process:
        record["process"] = e.process
    if e.began is not None:
        record["work"] = round(e.t - e.began, 6)  # seconds the engine spent handling it
    if isinstance(e, Received):
        record["bytes"] = e.nbytes
    elif isinstance(e, Finished):
        record["bytes"] = len(e.poem)
        record["poem"] = e.text
    elif isinstance(e, Failed):
        record["reason"] = e.reason
        record["bytes"] = e.received
    elif isinstance(e, Transformed):
        record["transform"] = e.transform
    elif isinstance(e, TransformFailed):
        record["transform"] = e.transform
        record["reason"] = e.reason
    elif isinstance(e, PoemLine):
        record["line"] = e.text
    elif isinstance(e, Restarted):
        record["reason"] = e.reason
        record["attempt"] = e.attempt
    return record


class JsonStyle(Reporter):
    """``--json``: one object per event on stdout (failures still a line on stderr), then a summary."""

    def event(self, e: Event) -> None:
        super().event(e)
        self.say(json.dumps(event_json(e, self.began), ensure_ascii=False))

    def closing(self, summary: Summary) -> None:
        self.say(
            json.dumps(
                {
                    "event": "summary",
                    "poems": len(summary.finished),
                    "failed": len(summary.failed),
                    "bytes": sum(len(e.poem) for e in summary.finished),
                    "elapsed": round(summary.elapsed, 6),
                    **self.about,
                }
            )
        )
