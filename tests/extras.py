"""The optional extras, for tests that need one: a test that cannot run without it skips, saying which.

The package runs without its extras (``pip install poetrynow`` alone): what it does then
is tested too, by hiding the module (:func:`hidden`), so those tests run everywhere. A test
that needs the module itself is decorated here, so a bare install reports a skip with the
extra to install instead of a failure.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import unittest
from collections.abc import Iterator
from contextlib import contextmanager


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def needs(module: str, extra: str):
    """Skip the test unless ``module`` is installed; the reason names the extra that brings it."""
    return unittest.skipUnless(
        installed(module), f"needs {module}: the '{extra}' extra (pip install 'poetrynow[{extra}]')"
    )


needs_matplotlib = needs("matplotlib", "plot")
needs_rich = needs("rich", "progress")
needs_uvloop = needs("uvloop", "speed")


@contextmanager
def hidden(module: str) -> Iterator[None]:
    """In this process, ``import module`` fails as if it were not installed."""
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == module}
    sys.modules[module] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules[module]
        sys.modules.update(saved)


def hiding(module: str, folder: str) -> dict[str, str]:
    """The environment of a subprocess in which ``import module`` fails: a stub first on its path.

    ``folder`` is a fresh directory of the test's; the stub package in it raises ImportError.
    """
    os.mkdir(os.path.join(folder, module))
    with open(os.path.join(folder, module, "__init__.py"), "w") as f:
        f.write(f"raise ImportError('no {module} here')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))}
