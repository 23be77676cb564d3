"""What the HTTP toxics (:mod:`poetrynow.relay.httptoxics`) take: their attributes, checked.

Apart from the stages so that the API's checks (:mod:`poetrynow.relay.toxics`) need no
stage: each toxic's defaults, the stream it acts on when none is named (``http_status``
answers requests, so upstream), and a reason a person can act on for each refusal,
which the API answers as a 400. An ``http_status`` answer is at most :data:`MAX_ANSWER`
bytes of body and of headers, each header one line, and Content-Length is its own.
"""

from __future__ import annotations

import re
from typing import Any

#: Each HTTP toxic's attributes and their defaults.
HTTP_TYPES: dict[str, dict[str, Any]] = {
    "http_status": {"code": 503, "body": "", "headers": {}},
    "http_latency": {"latency": 0, "jitter": 0},
    "http_slow_headers": {"delay": 0},
    "http_slow_body": {"rate": 0},
    "http_drop": {"after": "headers"},
}
#: The stream each acts on when the toxic names none (http_status answers requests).
DEFAULT_STREAM = {"http_status": "upstream"}
#: The most an http_status answer may carry, body and headers each.
MAX_ANSWER = 64 * 1024

FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 408: "Request Timeout", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}  # fmt: skip


def check_attributes(kind: str, stream: str, merged: dict[str, Any]) -> str | None:
    """Why the attributes of an HTTP toxic ``kind`` on ``stream`` are refused, or None."""
    for key in ("latency", "jitter", "delay", "rate"):
        if key in merged:
            value = merged[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3_600_000:
                return f"{kind} attribute {key} must be a whole number from 0 to 3600000, not {value!r}"
    if kind == "http_status":
        if stream != "upstream":
            return "http_status answers requests: its stream is upstream"
        code = merged["code"]
        if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
            return f"http_status attribute code must be a status from 200 to 599, not {code!r}"
        if not isinstance(merged["body"], str) or len(merged["body"].encode()) > MAX_ANSWER:
            return f"http_status attribute body must be a string of at most {MAX_ANSWER} bytes"
        headers = merged["headers"]
        if not isinstance(headers, dict) or not all(
            isinstance(k, str)
            and FIELD_NAME.fullmatch(k)
            and isinstance(v, str)
            and not set(v) & {"\r", "\n", "\0"}
            for k, v in headers.items()
        ):
            return "http_status attribute headers must map header names to values of one line"
        if sum(len(k) + len(v) for k, v in headers.items()) > MAX_ANSWER:
            return f"http_status attribute headers must be at most {MAX_ANSWER} bytes"
        if {k.lower() for k in headers} & {"content-length", "transfer-encoding"}:
            return "http_status sets Content-Length itself: leave it (and Transfer-Encoding) out"
    if kind == "http_drop":
        if merged["after"] not in ("headers", "request"):
            return f"http_drop attribute after must be 'headers' or 'request', not {merged['after']!r}"
        if merged["after"] == "request" and stream != "upstream":
            return "http_drop after a request acts on requests: its stream is upstream"
    return None


def answer_bytes(attributes: dict[str, Any], bodiless: bool = False) -> bytes:
    """The response http_status sends: its code, its headers, its body and that body's length;
    to a HEAD request (``bodiless``) the same length and no body, as RFC 9110 has it."""
    code, body = attributes["code"], attributes["body"].encode("utf-8")
    lines = [f"HTTP/1.1 {code} {REASONS.get(code, 'Fault')}"]
    lines += [f"{name}: {value}" for name, value in attributes["headers"].items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + (b"" if bodiless else body)
