"""Toxics as toxiproxy's API describes them: their types, defaults, JSON and validation.

A toxiproxy client library knows the server only by its answers, so the shapes
here are the contract: a toxic is ``{"name", "type", "stream", "toxicity",
"attributes"}``, its name defaults to ``<type>_<stream>``, its stream to
``downstream``, its toxicity to 1.0, and every attribute toxiproxy leaves out
is 0 (Go's zero value, which toxiproxy's defaults are). A body it would refuse
is refused here with its status and words, as :class:`ApiError`, which the HTTP
layer turns into toxiproxy's error body. No Twisted here: what a toxic *does*
to the bytes is in :mod:`poetrynow.relay.stages`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from poetrynow.relay.httpattributes import DEFAULT_STREAM, HTTP_TYPES, check_attributes

#: The two directions: downstream is upstream server to client, upstream is client to server.
DOWNSTREAM, UPSTREAM = "downstream", "upstream"
STREAMS = (DOWNSTREAM, UPSTREAM)

#: Each toxic type's attributes and their defaults, in toxiproxy's units.
TOXIC_TYPES: dict[str, dict[str, Any]] = {
    "latency": {"latency": 0, "jitter": 0},  # ms, ms
    "bandwidth": {"rate": 0},  # KB/s (1000 bytes); 0: no limit
    "slow_close": {"delay": 0},  # ms
    "timeout": {"timeout": 0},  # ms; 0: hold (and drop) the data until the toxic goes
    "reset_peer": {"timeout": 0},  # ms after the first data
    "limit_data": {"bytes": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},  # bytes, bytes, µs
    **HTTP_TYPES,  # (poetrynow's own: toxics that know HTTP/1.1)
}

# toxiproxy's words for each refusal.
BAD_BODY = "bad request body"
BAD_STREAM = "stream was invalid, can be either upstream or downstream"
#: The largest attribute: toxiproxy's are Go int64s, which refuse anything larger.
MAX_ATTRIBUTE = (1 << 63) - 1
BAD_TYPE = "invalid toxic type"
TOXIC_EXISTS = "toxic already exists"
TOXIC_NOT_FOUND = "toxic not found"


class ApiError(Exception):
    """A request refused, with the HTTP status and the message toxiproxy would give."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


@dataclass(frozen=True)
class Toxic:
    """One toxic on one relay: immutable, so an update is a new Toxic the connections adopt."""

    name: str
    type: str
    stream: str = DOWNSTREAM
    toxicity: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Updates so far: a connection's fate under each version is drawn apart (see relay.relay).
    version: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": {
                key: (dict(v) if isinstance(v, dict) else v) for key, v in self.attributes.items()
            },
        }


def _bad(why: str) -> ApiError:
    return ApiError(400, f"{BAD_BODY}: {why}")


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("a JSON object was expected")
    return body


def _toxicity(value: Any) -> float:
    # An int is compared as it is: float(10**400) would raise OverflowError, not refuse it.
    ok = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not ok or not 0 <= value <= 1:
        raise _bad(f"toxicity must be a number from 0 to 1, not {value!r}")
    return float(value)


def _attributes(kind: str, given: Any, base: dict[str, Any], stream: str) -> dict[str, Any]:
    """``base`` with the attributes ``given`` over it; unknown ones are ignored, as toxiproxy does."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise _bad("attributes must be an object")
    merged = dict(base)
    if kind in HTTP_TYPES:
        merged.update((key, value) for key, value in given.items() if key in merged)
        why = check_attributes(kind, stream, merged)
        if why is not None:
            raise _bad(why)
        return merged
    for key, value in given.items():
        if key not in merged:
            continue
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            raise _bad(f"{kind} attribute {key} must be a whole number, not {value!r}")
        if value < 0:
            raise _bad(f"{kind} attribute {key} must not be negative")
        if value > MAX_ATTRIBUTE:
            raise _bad(f"{kind} attribute {key} is over {MAX_ATTRIBUTE}")
        merged[key] = int(value)
    return merged


def make_toxic(body: Any) -> Toxic:
    """The toxic a ``POST /proxies/{proxy}/toxics`` body describes, its defaults filled in."""
    body = _body(body)
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in TOXIC_TYPES:
        raise ApiError(400, BAD_TYPE)
    stream = body.get("stream") or DEFAULT_STREAM.get(kind, DOWNSTREAM)
    stream = stream.lower() if isinstance(stream, str) else stream  # toxiproxy takes any case
    if stream not in STREAMS:
        raise ApiError(400, BAD_STREAM)
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise _bad("name must be a string")
    toxicity = _toxicity(body["toxicity"]) if body.get("toxicity") is not None else 1.0
    attributes = _attributes(kind, body.get("attributes"), TOXIC_TYPES[kind], stream)
    return Toxic(name, kind, stream, toxicity, attributes)


def updated_toxic(old: Toxic, body: Any) -> Toxic:
    """``old`` after a ``POST /proxies/{proxy}/toxics/{toxic}``: toxiproxy changes only the
    toxicity and the attributes given (merged into the old ones); name, type and stream stay."""
    body = _body(body)
    toxicity = _toxicity(body["toxicity"]) if body.get("toxicity") is not None else old.toxicity
    attributes = _attributes(old.type, body.get("attributes"), old.attributes, old.stream)
    return Toxic(old.name, old.type, old.stream, toxicity, attributes, old.version + 1)
