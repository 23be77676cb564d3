"""What a page may ask the lab to run, checked as the command line checks it.

Apart from :mod:`poetrynow.lab.runs` because every bound a page meets is here, in one
place: the engines (each once, and with a transform only those that send a poem on),
at most :data:`MAX_SERVERS` servers of a bundled poem, chunks of :data:`MIN_BYTES` to
:data:`MAX_BYTES`, a delay of at most :data:`MAX_DELAY`, and Part 20's cost
(:class:`~poetrynow.lab.part20.TransformCost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poetrynow import validate
from poetrynow.clients import ENGINES, XFORM, engines_taking
from poetrynow.demo import DEMO_SERVERS
from poetrynow.lab.part20 import TransformCost
from poetrynow.poems import bundled_names

#: At most this many servers in a run.
MAX_SERVERS = 5
#: The fewest bytes a chunk, and the longest delay: a run's reads, and its time, stay bounded.
MIN_BYTES, MAX_BYTES = 5, 100_000
MAX_DELAY = 1.0


@dataclass(frozen=True)
class Plan:
    """What the page asked for, checked as the command line checks it."""

    engines: tuple[str, ...]
    servers: tuple[tuple[str, int], ...]  # (poem, bytes a chunk)
    delay: float
    transform: TransformCost | None = None

    @classmethod
    def from_json(cls, body: Any) -> Plan:
        """The plan in ``body`` (the page's JSON); ValueError with a reason a person can act on."""
        if not isinstance(body, dict):
            raise ValueError("the run's settings must be a JSON object")
        engines = body.get("engines", ["blocking", "select"])
        if not isinstance(engines, list) or not engines:
            raise ValueError("choose at least one engine")
        for engine in engines:
            if engine not in ENGINES:
                raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
        if len(set(engines)) != len(engines):
            raise ValueError("an engine is chosen twice")
        servers = body.get("servers", [list(server) for server in DEMO_SERVERS])
        if not isinstance(servers, list) or not 1 <= len(servers) <= MAX_SERVERS:
            raise ValueError(f"from 1 to {MAX_SERVERS} servers")
        checked, names = [], bundled_names()
        for server in servers:
            if not (isinstance(server, list) and len(server) == 2):
                raise ValueError("a server is [poem, bytes a chunk]")
            poem, num_bytes = str(server[0]), validate.positive_int(str(server[1]))
            if not MIN_BYTES <= num_bytes <= MAX_BYTES:
                raise ValueError(f"bytes a chunk must be from {MIN_BYTES} to {MAX_BYTES}, got {num_bytes}")
            if poem not in names:  # (a page names no file: the lab serves its own poems only)
                raise ValueError(f"no bundled poem {poem!r}: choose from {', '.join(names)}")
            checked.append((poem, num_bytes))
        delay = validate.seconds(str(body.get("delay", 0.1)))
        if delay > MAX_DELAY:
            raise ValueError(f"the delay must be at most {MAX_DELAY:g} s in the lab, got {delay:g}")
        transform = TransformCost.from_json(body.get("transform"))
        if transform is not None:
            cannot = [engine for engine in engines if XFORM not in ENGINES[engine].takes]
            if cannot:
                raise ValueError(
                    f"{' and '.join(cannot)} cannot send a poem to a transform server: with a transform "
                    f"cost, choose from {', '.join(engines_taking(XFORM))}"
                )
        return cls(tuple(engines), tuple(checked), delay, transform)
