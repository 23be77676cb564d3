"""Installing or upgrading the package leaves twistd able to find its plugins.

twistd keeps a ``dropin.cache`` beside the plugin files and trusts it for any
plugin file older than the cache. Two things could go stale: a cache shipped in
the package (a developer's tree always has one), and the cache an earlier
version left in site-packages. These tests install the package for real with
pip into a directory of their own, and run twistd on that directory alone
(``python -S`` keeps the checkout's editable install off the path).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support import temp_dir
from tests.time_limit import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ["fastpoetry", "poetryproxy", "slowpoetry", "transformedpoetry"]

#: What an earlier release's plugin module could have held: one plugin, under a name
#: since dropped, so that trusting its cache would make twistd look for a missing name.
OLD_PLUGIN_MODULE = """
from poetrynow.plugins import fastpoetry as fastpoetry_v0
"""


def copy_of_the_tree(into: str) -> str:
    """The package's sources as a clean checkout would have them, plus a developer's plugin cache."""
    tree = os.path.join(into, "tree")
    os.makedirs(tree)
    for name in ["pyproject.toml", "README.md", "LICENSE", "docs/description.md"]:
        os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
        shutil.copy(ROOT / name, os.path.join(tree, name))
    shutil.copytree(
        ROOT / "src",
        os.path.join(tree, "src"),
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "dropin.cache"),
    )
    with open(os.path.join(tree, "src", "twisted", "plugins", "dropin.cache"), "wb") as f:
        f.write(pickle.dumps({"somebody_elses_plugin": "stale"}))
    return tree


_WHEEL: list[str] = []


def wheel_of_the_tree() -> str:
    """The package's wheel, built once per test run from a copy of the tree (build isolation and all)."""
    if not _WHEEL:
        import atexit
        import tempfile

        into = tempfile.mkdtemp(prefix="poetrynow-wheel-")
        atexit.register(shutil.rmtree, into, True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--wheel-dir",
                os.path.join(into, "dist"),
                copy_of_the_tree(into),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        [name] = os.listdir(os.path.join(into, "dist"))
        _WHEEL.append(os.path.join(into, "dist", name))
    return _WHEEL[0]


def pip_install(target: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            target,
            wheel_of_the_tree(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def twistd_commands(target: str, cwd: str) -> dict[str, str]:
    """The commands a twistd sees with only ``target`` and Twisted itself on its path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([target, sysconfig.get_paths()["purelib"]]))
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
            "--help",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = result.stdout.split("Commands:", 1)[1].splitlines()
    return {
        row.split()[0]: row.strip() for row in rows if row.startswith("    ") and not row.startswith("     ")
    }


class PluginInstallTests(SynchronousTestCase):
    def setUp(self):
        self.dir = temp_dir(self)
        self.target = os.path.join(self.dir, "site")
        self.run_in = os.path.join(self.dir, "cwd")
        os.makedirs(self.run_in)
        self.plugin_dir = Path(self.target, "twisted", "plugins")
        pip_install(self.target)

    def test_install_ships_no_cache_and_twistd_finds_all_four(self):
        self.assertEqual(
            sorted(p.name for p in self.plugin_dir.iterdir() if p.suffix != ""), ["poetrynow_plugins.py"]
        )
        self.assertFalse((self.plugin_dir / "__init__.py").exists())  # a namespace, as twistd requires
        commands = twistd_commands(self.target, self.run_in)
        for name in PLUGINS:
            self.assertIn(name, commands)
        self.assertTrue((self.plugin_dir / "dropin.cache").exists())  # twistd wrote its own

    def test_upgrade_over_an_earlier_versions_cache(self):
        plugin = self.plugin_dir / "poetrynow_plugins.py"
        current = plugin.read_bytes()
        plugin.write_text(OLD_PLUGIN_MODULE)
        self.assertEqual(
            [n for n in twistd_commands(self.target, self.run_in) if "poetry" in n], ["fastpoetry"]
        )
        # The upgrade, as pip does it in site-packages: the old file goes, the new one is
        # written, and the cache the old version left stays behind.
        cache_time = (self.plugin_dir / "dropin.cache").stat().st_mtime
        plugin.unlink()
        plugin.write_bytes(current)
        os.utime(plugin, (cache_time + 1, cache_time + 1))  # written after the cache, as it would be
        commands = twistd_commands(self.target, self.run_in)
        self.assertEqual(sorted(n for n in commands if "poetry" in n), PLUGINS)
