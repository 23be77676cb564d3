"""The events a timeline is drawn from, kept within a bound however many reads there were.

A poem trickled a few bytes at a time arrives in as many reads as it has bytes
to spare: a 64 MiB poem in one-byte reads is 67 million Received events, some
twenty gigabytes kept. A picture cannot show more reads than it has pixels, so
:class:`KeptEvents` keeps every event but the reads as they come, and a task's
reads merged where the picture could not tell them apart: a read that begins
within ``resolution`` seconds of the end of the task's last kept read (on the
same thread) is folded into it. The resolution starts at nothing (every read
kept) and doubles, re-merging what is kept, whenever a task passes
:data:`READS_PER_TASK` kept reads.
"""

from __future__ import annotations

import dataclasses

from poetrynow.events import Event, Received

#: A task's kept reads, at most; past it, its reads are merged at twice the resolution.
READS_PER_TASK = 2000
#: The first resolution a task's reads are merged at, and the coarsest, in seconds.
FINEST, COARSEST = 1e-4, 60.0


class TaskReads:
    """One task's reads, merged at its current resolution, each with its place in the run."""

    __slots__ = ("reads", "resolution", "saturated")

    def __init__(self) -> None:
        self.reads: list[tuple[int, Received]] = []  # (the first merged read's place, the read)
        self.resolution = 0.0
        # Merged as far as it goes: what is left are reads of different threads taking turns,
        # or a minute apart. They are kept as they come (no engine reads one task that way).
        self.saturated = False

    def add(self, place: int, read: Received) -> None:
        reads = self.reads
        if reads and self._close(reads[-1][1], read):
            reads[-1] = (reads[-1][0], merged(reads[-1][1], read))
            return
        reads.append((place, read))
        if len(reads) > READS_PER_TASK and not self.saturated:
            # Down to half the bound, so that the next re-merge is as many reads away.
            while len(self.reads) > READS_PER_TASK // 2:
                if self.resolution >= COARSEST:
                    self.saturated = True
                    break
                self.resolution = min(max(self.resolution * 2, FINEST), COARSEST)
                self._remerge()

    def _close(self, last: Received, read: Received) -> bool:
        began = read.began if read.began is not None else read.t
        return last.thread == read.thread and began - last.t <= self.resolution

    def _remerge(self) -> None:
        kept: list[tuple[int, Received]] = []
        for place, read in self.reads:
            if kept and self._close(kept[-1][1], read):
                kept[-1] = (kept[-1][0], merged(kept[-1][1], read))
            else:
                kept.append((place, read))
        self.reads = kept


def merged(first: Received, then: Received) -> Received:
    """One read that stands for two: from the first's beginning to the second's end, both sizes."""
    return dataclasses.replace(first, t=then.t, nbytes=first.nbytes + then.nbytes)


class KeptEvents:
    """Every event of a run, but the reads merged per task (see the module's docstring)."""

    def __init__(self) -> None:
        self._others: list[tuple[int, Event]] = []
        self._reads: dict[int, TaskReads] = {}
        self._came = 0

    def add(self, event: Event) -> None:
        place = self._came
        self._came = place + 1
        if isinstance(event, Received):
            reads = self._reads.get(event.task)
            if reads is None:
                reads = self._reads[event.task] = TaskReads()
            reads.add(place, event)
        else:
            self._others.append((place, event))

    def __len__(self) -> int:
        return len(self._others) + sum(len(reads.reads) for reads in self._reads.values())

    def events(self) -> list[Event]:
        """Every kept event, in the order they came (a merged read where its first part came)."""
        every = list(self._others)
        for reads in self._reads.values():
            every.extend(reads.reads)
        every.sort(key=lambda kept: kept[0])
        return [event for _, event in every]
