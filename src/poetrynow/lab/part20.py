"""Part 20 in the lab: a transform server whose every transform costs S, and what its work shows.

The page may send each poem through ``transformedpoetry --cost S --cost-kind K
--cost-in P``, the server of ``poetrynow demo --transform-cost``. Its work log
(``--work-log``) says when each transform began and ended, on which worker; the
lab reads the log while the run goes (:class:`WorkTail`) so the page draws the
server's workers beside the clients' tasks, and the closing sentence comes from
the log's own figures: how many transforms ran at once (:func:`most_at_once`), and
how long each took on the clock against the cost asked for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from poetrynow import validate
from poetrynow.schedule import PoemSchedule, ideal_total
from poetrynow.servers.transform.costs import KINDS, PLACES

#: The longest transform cost the lab lets a page ask for: a run stays within its time limit.
MAX_COST = 2.0
#: The bytes of the work log read at a time, and the longest line kept (a line is ~150 bytes).
READ_AT_ONCE = 64 * 1024
LINE_LIMIT = 4096
#: Where the work is done, as the sentence says it.
WHERE = {
    "loop": "in its reactor's thread",
    "thread": "in a pool of threads",
    "process": "in a pool of processes",
}


@dataclass(frozen=True)
class TransformCost:
    """What each transform costs (seconds, of a ``wait`` or of ``cpu`` work) and where it is done."""

    cost: float
    kind: str
    place: str

    @classmethod
    def from_json(cls, body: Any) -> TransformCost | None:
        """The page's ``transform`` setting (None: no transform server); ValueError says why not."""
        if body is None:
            return None
        if not isinstance(body, dict):
            raise ValueError("the transform is an object: cost, kind and place")
        cost = validate.seconds(str(body.get("cost", 0.5)))
        if cost > MAX_COST:
            raise ValueError(f"a transform's cost must be at most {MAX_COST:g} s in the lab, got {cost:g}")
        kind, place = body.get("kind", "wait"), body.get("place", "loop")
        if kind not in KINDS:
            raise ValueError(f"a transform's cost is one of {', '.join(KINDS)}, not {kind!r}")
        if place not in PLACES:
            raise ValueError(f"a transform is done in one of {', '.join(PLACES)}, not {place!r}")
        return cls(cost, kind, place)

    def args(self) -> list[str]:
        """``transformedpoetry``'s options for this cost, as a person would type them."""
        return ["--cost", f"{self.cost:g}", "--cost-kind", self.kind, "--cost-in", self.place]


class WorkTail:
    """The lines a transform server adds to its work log, read as it writes them.

    Bounded: a read takes at most :data:`READ_AT_ONCE` bytes, a line longer than
    :data:`LINE_LIMIT` is dropped, and a line that is not a whole record is skipped.
    """

    def __init__(self, path: str):
        self.path = path
        self.offset = 0
        self.partial = b""

    def new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read(READ_AT_ONCE)
        except OSError:  # (not written yet: the server has done no transform)
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        if len(self.partial) > LINE_LIMIT:
            self.partial = b""
        return [record for line in lines if (record := _record(line)) is not None]


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
        began, ended, worker = float(record["began"]), float(record["ended"]), str(record["worker"])
    except (ValueError, TypeError, KeyError):
        return None
    return {"began": began, "ended": ended, "worker": worker}


def most_at_once(work: Sequence[dict[str, Any]]) -> int:
    """The most transforms at work at one moment (one that ends as another begins: not together)."""
    edges = sorted(
        [(w["began"], 1) for w in work] + [(w["ended"], -1) for w in work], key=lambda e: (e[0], e[1])
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def work_sentence(work: Sequence[dict[str, Any]], transform: TransformCost, cores: int) -> str:
    """What the server's work log shows, in words that stay true whatever it came to."""
    cost, where = transform.cost, WHERE[transform.place]
    if not work:
        return "The transform server logged no work: no poem reached it."
    together = most_at_once(work)
    took = sum(w["ended"] - w["began"] for w in work) / len(work)
    said = (
        f"The transform server did {len(work)} transform{'s' if len(work) != 1 else ''} of {cost:g} s "
        f"({'a blocking wait' if transform.kind == 'wait' else 'CPU work'}) {where}, "
        f"at most {together} at once"
    )
    if transform.place == "loop":
        return f"{said}: a poem that came while another was transformed waited its turn, as Part 20 warns."
    if together == 1:
        return (
            f"{said}: the poems came apart, so there was nothing to overlap "
            "(give servers the same poem and chunk)."
        )
    if transform.kind == "cpu" and cost > 0 and took >= 1.5 * cost:
        shared = (
            "the threads took turns holding the GIL"
            if transform.place == "thread"
            else f"they shared {cores} core{'s' if cores != 1 else ''}"
        )
        return f"{said}, but each took {took:.2f} s on the clock for {cost:g} s of CPU: {shared}."
    return f"{said}: they overlapped, {took:.2f} s each on the clock."


def engines_sentence(
    took: dict[str, float], slowest: float, cost: float, shared: tuple[int, float] | None = None
) -> str:
    """The engines' times against their ideal: the slowest server, then one transform; ``shared``:
    (cores, the ideal) for CPU work, which takes turns once the poems outnumber the cores."""
    if not took:
        return ""
    ideal = f"the slowest server alone takes {slowest:.2f} s, and a poem's transform {cost:g} s more"
    if shared is not None and shared[1] > slowest + cost + 0.005:
        cores, best = shared
        ideal += f"; as CPU work on {cores} core{'s' if cores != 1 else ''}, {best:.2f} s at best"
    if len(took) == 1:
        ((engine, elapsed),) = took.items()
        return f"{engine} took {elapsed:.2f} s: {ideal}."
    low, high = f"{min(took.values()):.2f}", f"{max(took.values()):.2f}"
    span = f"each took {low} s" if low == high else f"took from {low} s to {high} s"
    return f"The engines {span}: {ideal}."


def part20_sentence(
    outcomes: Sequence[Any],
    schedules: Sequence[PoemSchedule],
    work: Sequence[dict[str, Any]],
    transform: TransformCost,
    cores: int,
) -> str:
    """The lab's sentence for a run with a transform (each of ``outcomes`` a demo's
    :class:`~poetrynow.demo.Outcome`): the engines against their ideal, then the server's work."""
    lines = [
        f"Not ranked: {o.engine} did not get every poem back transformed." for o in outcomes if not o.complete
    ]
    took = {o.engine: o.summary.elapsed for o in outcomes if o.complete}
    slowest = max((s.duration for s in schedules), default=0.0)
    shared = (cores, ideal_total(schedules, True, transform.cost, cores)) if transform.kind == "cpu" else None
    said = [engines_sentence(took, slowest, transform.cost, shared), work_sentence(work, transform, cores)]
    return "\n".join([" ".join(line for line in said if line), *lines])
