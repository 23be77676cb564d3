"""Who may use a lab: its own page, with its token, and no other site.

Like Jupyter's, a lab prints a token and refuses a request without it (403): another
user of the machine can reach 127.0.0.1 too. And like toxiproxy's API, it refuses a
request whose Origin is another site's, so that no other page open in the browser can
start runs, even one that learnt the token. The token travels in the query string (an
EventSource can set no header), and is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any


def new_token() -> str:
    return secrets.token_urlsafe(24)


def origins(port: int) -> set[str]:
    """The Origins of the lab's own page: the addresses it is served on."""
    return {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}


def refusal(request: Any, token: str, port: int) -> str | None:
    """Why ``request`` (twisted.web's) is refused, or None when it is the lab page's own."""
    origin = request.getHeader("origin")
    if origin is not None and origin not in origins(port):
        return f"requests from another site ({origin}) are refused"
    given = (request.args.get(b"token") or [b""])[0]
    if not hmac.compare_digest(given, token.encode("ascii")):
        return "this needs the lab's token: open the address poetrynow lab printed"
    return None
