"""The Trace Event Format's rules, as the tests check a trace against them.

Written from the format's description (the JSON object form): a ``traceEvents``
list and a ``displayTimeUnit`` of ``ms`` or ``ns``; each event has a phase
``ph``, a ``name``, a process ``pid``; the timed ones a ``ts`` in microseconds
and a thread ``tid``; a complete event (``X``) a ``dur``; an instant (``i``)
a scope ``s`` of ``g``, ``p`` or ``t``; a counter (``C``) numeric ``args``; an
async begin or end (``b``, ``e``) a ``cat`` and an ``id``; a metadata event
(``M``) one of the names that label or order processes and threads, with its
``args``. On top of the format, what poetrynow promises: every process and
every thread with events is named, every async slice that begins ends, and
the slices on one thread never cross.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

PHASES = {"X", "i", "C", "b", "e", "M"}
METADATA = {"process_name": "name", "process_sort_index": "sort_index", "thread_name": "name",
            "thread_sort_index": "sort_index"}  # fmt: skip
#: Rounding slack, in microseconds: times are written to the nanosecond.
SLACK = 0.002


class TraceProblem(AssertionError):
    pass


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_trace(trace: Any) -> list[dict]:
    """Raise TraceProblem naming the first broken rule; return the events."""
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise TraceProblem("not an object with a traceEvents list")
    if trace.get("displayTimeUnit") not in ("ms", "ns"):
        raise TraceProblem(f"displayTimeUnit is {trace.get('displayTimeUnit')!r}")
    events = trace["traceEvents"]
    for event in events:
        check_event(event)
    check_names(events)
    check_async(events)
    check_nesting(events)
    return events


def check_event(event: dict) -> None:
    def need(condition: bool, why: str) -> None:
        if not condition:
            raise TraceProblem(f"{why}: {event}")

    ph = event.get("ph")
    need(ph in PHASES, "unknown phase")
    need(isinstance(event.get("name"), str) and event["name"], "no name")
    need(isinstance(event.get("pid"), int), "no pid")
    if ph == "M":
        need(event["name"] in METADATA, "unknown metadata")
        need(
            isinstance(event.get("args"), dict) and METADATA[event["name"]] in event["args"], "metadata args"
        )
        if event["name"].startswith("thread"):
            need(isinstance(event.get("tid"), int), "thread metadata without tid")
        return
    need(number(event.get("ts")) and event["ts"] >= 0, "no ts, or before the run")
    if ph in ("X", "i", "b", "e"):
        need(isinstance(event.get("tid"), int), "no tid")
    if ph == "X":
        need(number(event.get("dur")) and event["dur"] >= 0, "X without a dur")
    if ph == "i":
        need(event.get("s") in ("g", "p", "t"), "instant without a scope")
    if ph == "C":
        args = event.get("args")
        need(isinstance(args, dict) and args and all(number(v) for v in args.values()), "counter args")
    if ph in ("b", "e"):
        need(
            isinstance(event.get("cat"), str) and ("id" in event or "id2" in event),
            "async event without cat and id",
        )


def check_names(events: list[dict]) -> None:
    processes = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    for e in events:
        if e["ph"] == "M":
            continue
        if e["pid"] not in processes:
            raise TraceProblem(f"process {e['pid']} has no name")
        on_a_thread = e["ph"] == "X" or (e["ph"] == "i" and e["s"] == "t")
        if on_a_thread and (e["pid"], e["tid"]) not in threads:
            raise TraceProblem(f"thread {e['pid']}/{e['tid']} has no name")


def check_async(events: list[dict]) -> None:
    open_: dict[tuple, float] = {}
    for e in events:
        # A plain id is global, an id2's "local" id is the process's own (a viewer pairs them so).
        local = e.get("id2", {}).get("local") if isinstance(e.get("id2"), dict) else None
        key = (e.get("pid") if local is not None else None, e.get("cat"), e.get("id", local), e.get("name"))
        if e["ph"] == "b":
            if key in open_:
                raise TraceProblem(f"async slice begun twice: {key}")
            open_[key] = e["ts"]
        elif e["ph"] == "e" and (key not in open_ or e["ts"] < open_.pop(key) - SLACK):
            raise TraceProblem(f"async slice ends before it begins, or never began: {key}")
    if open_:
        raise TraceProblem(f"async slices never ended: {sorted(open_)}")


def check_nesting(events: list[dict]) -> None:
    """On each thread, one slice ends before the next begins, or lies inside it."""
    by_thread: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            by_thread[e["pid"], e["tid"]].append((e["ts"], e["ts"] + e["dur"], e["name"]))
    for thread, slices in by_thread.items():
        slices.sort(key=lambda s: (s[0], -s[1]))
        stack: list[tuple[float, float, str]] = []
        for start, end, name in slices:
            while stack and stack[-1][1] <= start + SLACK:
                stack.pop()
            if stack and end > stack[-1][1] + SLACK:
                raise TraceProblem(f"on {thread}, {name} at {start} crosses {stack[-1]}")
            stack.append((start, end, name))


def slices(events: list[dict], pid: int | None = None, cat: str | None = None) -> list[dict]:
    return [
        e
        for e in events
        if e["ph"] == "X" and (pid is None or e["pid"] == pid) and (cat is None or e.get("cat") == cat)
    ]


def thread_names(events: list[dict], pid: int) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == pid
    }
