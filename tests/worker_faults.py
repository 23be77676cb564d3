"""Transforms that break a worker process, for the process pool's tests (a worker imports this module)."""

from __future__ import annotations

import os


def die(poem: str) -> str:
    """The worker process ends at once, as one killed would: the pool is broken."""
    os._exit(3)
