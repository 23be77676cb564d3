"""The project's own poems, shipped as package data, and name-or-path lookup.

Every command that takes a POEM accepts a bundled poem's name (``lighthouse``)
or a path to any file; the bundled set is sized like the articles' set so their
experiment keeps its shape (one long poem, two short ones, one with non-ASCII
UTF-8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


class PoemNotFound(LookupError):
    """Neither a bundled poem's name nor a readable file."""


@dataclass(frozen=True)
class Poem:
    name: str
    data: bytes

    @property
    def title(self) -> str:
        for line in self.data.decode("utf-8", errors="replace").splitlines():
            if line.strip():
                return line.strip()
        return ""

    @property
    def lines(self) -> int:
        return len(self.data.splitlines())


def _bundled_dir():
    return resources.files(__name__)


def bundled_names() -> list[str]:
    """Names of the bundled poems, sorted."""
    return sorted(
        entry.name[: -len(".txt")] for entry in _bundled_dir().iterdir() if entry.name.endswith(".txt")
    )


def bundled_poems() -> list[Poem]:
    return [load_poem(name) for name in bundled_names()]


def load_poem(name_or_path: str | os.PathLike) -> Poem:
    """Read a poem as bytes: a bundled name first, then a file path."""
    text = os.fspath(name_or_path)
    if text in bundled_names():
        return Poem(text, _bundled_dir().joinpath(text + ".txt").read_bytes())
    path = Path(text)
    try:
        return Poem(path.stem, path.read_bytes())
    except FileNotFoundError:
        raise PoemNotFound(f"no such poem: {text} (bundled poems: {', '.join(bundled_names())})") from None
    except IsADirectoryError:
        raise PoemNotFound(f"cannot read poem {text}: it is a directory") from None
    except OSError as error:
        raise PoemNotFound(f"cannot read poem {text}: {error.strerror}") from None
