"""A small toxiproxy client, written only from toxiproxy's documentation, as a user's would be.

Its README's "HTTP API" section is the whole source: the endpoints, the proxy
fields (name, listen, upstream, enabled), the toxic fields (name defaulting to
``<type>_<stream>``, type, stream defaulting to downstream, toxicity defaulting to
1.0, attributes) and port 8474. Nothing here knows poetrynow: the tests use it to
show that a client written for toxiproxy works against ``poetrynow faults``
unmodified. Only the standard library (urllib.request), as a test helper should.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ToxiproxyError(Exception):
    """The server refused a request: its HTTP status and the ``error`` of its JSON body."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Toxiproxy:
    """The API at ``url`` (toxiproxy's default: http://127.0.0.1:8474)."""

    def __init__(self, url: str = "http://127.0.0.1:8474", timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call: the decoded JSON answer (None for an empty one); ToxiproxyError if refused."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as refused:
            raw = refused.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace")
            raise ToxiproxyError(refused.code, message) from None
        return json.loads(raw) if raw.strip() else None

    def version(self) -> str:
        answer = self.request("GET", "/version")
        return answer["version"] if isinstance(answer, dict) else str(answer)

    def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy(self, fields) for name, fields in self.request("GET", "/proxies").items()}

    def create(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> Proxy:
        fields = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return Proxy(self, self.request("POST", "/proxies", fields))

    def get(self, name: str) -> Proxy:
        return Proxy(self, self.request("GET", f"/proxies/{name}"))

    def populate(self, proxies: list[dict[str, Any]]) -> list[Proxy]:
        """Create or replace each proxy; the ones the server answers with."""
        return [Proxy(self, fields) for fields in self.request("POST", "/populate", proxies)["proxies"]]

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        self.request("POST", "/reset")


class Proxy:
    """One proxy as the server last described it; its methods call the server."""

    def __init__(self, client: Toxiproxy, fields: dict[str, Any]):
        self.client = client
        self.fields = fields

    def __getattr__(self, field: str) -> Any:
        try:
            return self.__dict__["fields"][field]
        except KeyError:
            raise AttributeError(field) from None

    @property
    def listen_port(self) -> int:
        return int(self.fields["listen"].rpartition(":")[2])

    @property
    def path(self) -> str:
        return f"/proxies/{self.fields['name']}"

    def refresh(self) -> Proxy:
        self.fields = self.client.request("GET", self.path)
        return self

    def update(self, **fields: Any) -> Proxy:
        self.fields = self.client.request("POST", self.path, fields)
        return self

    def disable(self) -> Proxy:
        return self.update(enabled=False)

    def enable(self) -> Proxy:
        return self.update(enabled=True)

    def delete(self) -> None:
        self.client.request("DELETE", self.path)

    def toxics(self) -> list[dict[str, Any]]:
        return self.client.request("GET", f"{self.path}/toxics")

    def add_toxic(
        self,
        type: str,
        stream: str | None = None,
        toxicity: float | None = None,
        name: str | None = None,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Add a toxic; the fields left out take the server's defaults."""
        body: dict[str, Any] = {"type": type, "attributes": attributes}
        for key, value in (("stream", stream), ("toxicity", toxicity), ("name", name)):
            if value is not None:
                body[key] = value
        return self.client.request("POST", f"{self.path}/toxics", body)

    def toxic(self, name: str) -> dict[str, Any]:
        return self.client.request("GET", f"{self.path}/toxics/{name}")

    def update_toxic(self, name: str, toxicity: float | None = None, **attributes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self.client.request("POST", f"{self.path}/toxics/{name}", body)

    def remove_toxic(self, name: str) -> None:
        self.client.request("DELETE", f"{self.path}/toxics/{name}")
