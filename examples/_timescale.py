"""Shared by the reactor examples: how long a "second" is.

POETRYNOW_TIME_SCALE=0.01 runs a 5 second delay in 0.05 s, so the tests can run
the examples unchanged, just faster. Unset, a second is a second.
"""

import os


def seconds(n: float) -> float:
    return n * float(os.environ.get("POETRYNOW_TIME_SCALE", "1"))
