"""What a run did, task by task: the rows both pictures of it are drawn from.

A task's row has its start and end, the span of each read's handling (from
``Event.began``, when the engine began on it, to ``Event.t``, when it was done),
whether it failed, and its lane: the thread that did its reading. A panel is one
run's rows; its lanes are the threads, in the order of the tasks they served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from poetrynow.events import Event, Failed, Finished, Received, Started

MAIN = "main thread"


@dataclass(frozen=True)
class Row:
    """One task, in seconds since its panel's start."""

    task: int
    label: str
    lane: str  # the thread that did its work
    start: float
    end: float | None
    work: tuple[tuple[float, float], ...]  # (began, ended) of each read's handling
    failed: bool
    #: What the text timeline calls the row ("" for ``task N``): a server's work is no client's task.
    name: str = ""

    @property
    def chunks(self) -> tuple[float, ...]:
        """When each read was done with."""
        return tuple(end for _, end in self.work)


@dataclass(frozen=True)
class Panel:
    title: str
    rows: tuple[Row, ...]

    @property
    def lanes(self) -> tuple[str, ...]:
        """The threads that did the reading, the lane of task 1 first."""
        seen: dict[str, None] = {}
        for row in self.rows:  # in task order
            seen.setdefault(row.lane)
        return tuple(seen)

    @property
    def last(self) -> float:
        times = [0.0]
        for row in self.rows:
            times.append(row.end if row.end is not None else row.start)
            times.extend(end for _, end in row.work)
        return max(times)


def lane_names(events: Sequence[Event]) -> dict[str, str]:
    """Thread name -> lane label: ``main thread``, and ``thread 1``, ``thread 2``... in task order.

    A task's thread is the one that did its reading (or, before any read, the one
    that started it); the other threads are numbered by the first task each did.
    """
    threads: dict[int, str] = {}
    for e in events:
        if e.thread and (isinstance(e, Received) or e.task not in threads):
            threads[e.task] = e.thread
    names: dict[str, str] = {}
    others = 0
    for _, thread in sorted(threads.items()):
        if thread not in names:
            if thread == "MainThread":
                names[thread] = MAIN
            else:
                others += 1
                names[thread] = f"thread {others}"
    return names


def rows_of(events: Sequence[Event], began: float) -> tuple[Row, ...]:
    """Turn one run's events into rows, task by task, times relative to ``began``."""
    lanes = lane_names(events)
    tasks: dict[int, dict] = {}
    for e in events:
        task = tasks.setdefault(
            e.task,
            {"label": f"Task {e.task}  {e.address}", "start": None, "end": None, "work": [], "failed": False,
             "lane": None},
        )  # fmt: skip
        t = e.t - began
        if isinstance(e, Started):
            task["start"] = t
        elif isinstance(e, Received):
            task["work"].append(((e.began if e.began is not None else e.t) - began, t))
            task["lane"] = lanes.get(e.thread, MAIN)  # where the reading was done
        elif isinstance(e, Finished):
            task["end"] = t
        elif isinstance(e, Failed):
            task["end"], task["failed"] = t, True
        if task["lane"] is None and e.thread in lanes:
            task["lane"] = lanes[e.thread]
    return tuple(
        Row(
            number,
            v["label"],
            v["lane"] or MAIN,
            v["start"] if v["start"] is not None else 0.0,
            v["end"],
            tuple(v["work"]),
            v["failed"],
        )
        for number, v in sorted(tasks.items())
    )
