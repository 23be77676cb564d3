"""Who may use a lab: its own page, with its token, and no other site.

Like Jupyter's, a lab prints a token and refuses a request without it (403): another
user of the machine can reach 127.0.0.1 too. And like toxiproxy's API, it refuses a
request whose Origin is another site's, so that no other page open in the browser can
start runs, even one that learnt the token. The token travels in the query string (an
EventSource can set no header), and is compared in constant time.

The Host must be the lab's own address too: a site whose name is made to resolve to
127.0.0.1 (DNS rebinding) is then same-origin with the lab in the browser's eyes, and
only the Host it sends tells it apart. A POST must say its body is JSON, which no
other site's form can send without the browser asking the lab first (a CORS
preflight, which the lab never grants).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hosts(port: int) -> set[str]:
    """The Hosts the lab's own page names: the addresses it may be reached on."""
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


def origins(port: int) -> set[str]:
    """The Origins of the lab's own page."""
    return {f"http://{host}" for host in hosts(port)}


def refusal(request: Any, token: str, port: int) -> str | None:
    """Why ``request`` (twisted.web's) is refused, or None when it is the lab page's own."""
    host = (request.getHeader("host") or "").lower()
    if host not in hosts(port):
        return f"the lab answers only to its own address (127.0.0.1:{port}), not to Host {host!r}"
    origin = request.getHeader("origin")
    if origin is not None and origin not in origins(port):
        return f"requests from another site ({origin}) are refused"
    given = (request.args.get(b"token") or [b""])[0]
    if not hmac.compare_digest(given, token.encode("ascii")):
        return "this needs the lab's token: open the address poetrynow lab printed"
    return None


def not_json(request: Any) -> str | None:
    """Why a POST is refused (a 415) for the body it says it sends, or None when that is JSON."""
    kind = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if kind != "application/json":
        return "a POST to the lab must send JSON (Content-Type: application/json)"
    return None
