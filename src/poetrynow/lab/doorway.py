"""The lab's page, opened in the user's browser without the token on a command line.

``webbrowser.open(url)`` starts the browser with the address, token and all, in its
arguments, which every user of the machine can read (``ps``). Like Jupyter, the lab
writes instead a small page that sends the browser on to its address, in a file only
its user may read (mode 0600, in a folder of mode 0700), and opens that file; the file
is removed when the lab ends.
"""

from __future__ import annotations

import html
import os
import pathlib
import tempfile


class Doorway:
    """A file:// page of the user's own that leads to the lab's address."""

    def __init__(self) -> None:
        self.folder: tempfile.TemporaryDirectory[str] | None = None
        self.closed = False

    def write(self, url: str) -> pathlib.Path:
        if self.closed:  # (the lab ended while a browser was being found: no file to leave behind)
            raise RuntimeError("the lab has stopped")
        if self.folder is None:
            self.folder = tempfile.TemporaryDirectory(prefix="poetrynow-lab-page-")  # (mode 0700)
        path = pathlib.Path(self.folder.name) / "open-the-lab.html"
        target = html.escape(url, quote=True)
        text = (
            '<!doctype html><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0;url={target}">'
            f'<title>poetrynow lab</title><p><a href="{target}">Open the lab</a></p>\n'
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def open(self, url: str) -> bool:
        """Open the page in the user's browser; False where no browser could be started."""
        import webbrowser

        return webbrowser.open(self.write(url).as_uri())

    def close(self) -> None:
        self.closed = True
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None
