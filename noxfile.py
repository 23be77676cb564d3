"""The test matrix: every supported Python against Twisted's declared floor and its newest release.

``make matrix`` runs every session here; ``nox -l`` lists them. Each cell installs the
package the way a user would get it on that Python and runs the whole suite as
``make test`` does, so a floor in pyproject.toml is a version that was tested, not a
hope. The floors are read from pyproject.toml, so raising one is a one-line change there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

PYTHONS = ["3.11", "3.12", "3.13"]
HERE = Path(__file__).resolve().parent
PYTEST = ["python", "-m", "pytest", "-q", "-n", "4"]
#: What a cell runs: the suite but its heavy experiments (tests/conftest.py), which
#: ``make test`` runs once; so the whole of CI fits its time.
CELL = [*PYTEST, "-m", "not heavy"]
#: Every extra a user may install, as in the cells that test the full package.
ALL_EXTRAS = ".[test,all]"
#: Writes twistd's dropin.cache beside the plugins after an install, as the Makefile does.
SCAN_PLUGINS = "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

# uv builds a venv and installs into it in seconds, so every run starts each cell afresh and
# "newest" is what a resolver picks today; the stdlib's venv (with pip) is the fallback.
nox.options.default_venv_backend = "uv|venv"
# A cell whose Python is missing fails the run instead of being skipped: a green matrix
# must mean every cell ran. Nor may nox fetch an interpreter: only PyPI is reachable here.
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"


def works(python: str, version: str) -> bool:
    """Whether ``python`` runs and is ``version``: a pyenv shim on PATH may name a Python it cannot run."""
    try:
        ran = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        return False
    return ran.returncode == 0 and ran.stdout.strip() == version


def pyenv_versions() -> Path:
    """Where pyenv keeps its Pythons: $PYENV_ROOT, else what ``pyenv root`` says, else ~/.pyenv."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    return Path(root or Path.home() / ".pyenv") / "versions"


def from_pyenv(version: str) -> Path | None:
    """The newest CPython X.Y.Z that pyenv has for ``version`` (X.Y) and that runs."""
    found = []
    if pyenv_versions().is_dir():
        for folder in pyenv_versions().iterdir():
            if re.fullmatch(re.escape(version) + r"\.\d+", folder.name):
                found.append((int(folder.name.rsplit(".", 1)[1]), folder / "bin" / f"python{version}"))
    for _, python in sorted(found, reverse=True):
        if works(str(python), version):
            return python
    return None


def find_pythons(versions: list[str]) -> None:
    """Put each Python that is not on PATH but under pyenv where nox will look for it.

    nox finds ``pythonX.Y`` on PATH. A Python that is missing there, or whose name there
    is a pyenv shim that cannot run it, is linked from pyenv's versions into a folder of
    links put first on PATH: that folder holds nothing but those ``pythonX.Y`` names, so
    it shadows no other command. A Python found in neither place is left to nox to report.
    The venvs nox makes run their Python through these links, so a link is only ever
    replaced in one step, never removed while it still points at the Python to use.
    """
    links = HERE / ".nox" / "pythons"
    links.mkdir(parents=True, exist_ok=True)
    path = [folder for folder in os.environ.get("PATH", "").split(os.pathsep) if folder != str(links)]
    for version in versions:
        link = links / f"python{version}"
        on_path = shutil.which(f"python{version}", path=os.pathsep.join(path))
        if on_path and works(on_path, version):
            link.unlink(missing_ok=True)  # PATH's own is the one to use
            continue
        python = from_pyenv(version)
        if python is None:
            link.unlink(missing_ok=True)
            print(f"python{version} is neither on PATH nor in {pyenv_versions()}: its cells will fail")
            continue
        if not link.is_symlink() or link.readlink() != python:
            new = links / f".python{version}.new"
            new.unlink(missing_ok=True)
            new.symlink_to(python)
            new.replace(link)
    os.environ["PATH"] = os.pathsep.join([str(links), *path])


def twisted_floor(python: str) -> str:
    """The Twisted that pyproject.toml declares as the lowest for ``python``, pinned exactly."""
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name.lower() != "twisted":
            continue
        if requirement.marker and not requirement.marker.evaluate({"python_version": python}):
            continue
        [floor] = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        return f"Twisted=={floor}"
    raise ValueError(f"pyproject.toml declares no Twisted for Python {python}")


def install(session: nox.Session, *requirements: str) -> None:
    """Install the checkout (editable, as ``make`` does), then let twistd write its plugin cache."""
    session.install("-e", *requirements)
    session.run("python", "-c", SCAN_PLUGINS)


find_pythons(PYTHONS)


@nox.session(python=PYTHONS)
@nox.parametrize("twisted", ["lowest", "newest"], ids=["lowest", "newest"])
def tests(session: nox.Session, twisted: str) -> None:
    """The suite with every extra, on Twisted's floor for this Python or on whatever is newest."""
    assert isinstance(session.python, str)
    pins = [twisted_floor(session.python)] if twisted == "lowest" else []
    install(session, ALL_EXTRAS, *pins)
    session.run(*CELL, *session.posargs)


#: What a bare install changes: the modules that import an extra when it is there (progress,
#: the timeline's picture, the asyncio engines' uvloop, ssl endpoints), the commands and
#: entry points that reach them, and every module imported afresh. The rest of the suite (the
#: servers, the relay, the engines' network paths) runs the same code with or without the
#: extras, and make test runs it on this Python and Twisted already.
BARE_TESTS = [
    f"tests/test_{name}.py"
    for name in (
        "layers", "cli", "pictures", "report", "every_engine", "demo", "costdemo", "trace",
        "endpoints", "readme", "plugin_install", "twistd", "examples", "server_commands",
        "relay_fixture",
    )
]  # fmt: skip


@nox.session(python="3.11")
def bare(session: nox.Session) -> None:
    """What an install without the extras changes: what needs matplotlib, rich or uvloop must skip,
    saying why, and everything else work without them (``BARE_TESTS``; ``-- tests`` for all)."""
    install(session, ".[test]")
    session.run(*CELL, *(session.posargs or BARE_TESTS))


def trial_names(session: nox.Session) -> list[str]:
    """The cells' tests, as trial spells them: pytest collects them (its markers say which are
    heavy); only tests in classes, since a pytest function test takes fixtures trial does not know."""
    listed = session.run("python", "-m", "pytest", "-q", "--collect-only", "-m", "not heavy", silent=True)
    names = []
    for line in str(listed).splitlines():
        parts = line.strip().split("::")
        if len(parts) == 3 and parts[0].startswith("tests/") and parts[0].endswith(".py"):
            names.append(".".join([parts[0][: -len(".py")].replace("/", "."), parts[1], parts[2]]))
    if not names:
        session.error("pytest collected no test for trial to run")
    return names


@nox.session(python="3.12")
def trial(session: nox.Session) -> None:
    """The cells' suite under Twisted's own runner (Part 15), on Python 3.12 and Twisted's floor:
    every test is trial-style, and this cell is that Python and Twisted's run, so that trial
    costs CI no run of its own. Four workers, as the pytest cells have: most tests wait."""
    install(session, ALL_EXTRAS, twisted_floor("3.12"))
    session.run("python", "-m", "twisted.trial", "-j", "4", *(session.posargs or trial_names(session)))


def hosts_with_ipv6_first(original: str) -> str:
    """/etc/hosts as a host that prefers IPv6 has it: ``::1 localhost`` before ``127.0.0.1 localhost``."""
    kept = [line for line in original.splitlines() if "localhost" not in line.split("#", 1)[0].split()[1:]]
    return "\n".join(["::1 localhost ip6-localhost ip6-loopback", "127.0.0.1 localhost", *kept]) + "\n"


#: Run in a mount namespace of its own, where "$0" is bound over /etc/hosts: ``sh -c`` then the command.
UNSHARE = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind "$0" /etc/hosts && exec "$@"',
]


def unshare_refused() -> str | None:
    """Why this machine will not give a process a private /etc/hosts, or None if it will.

    The same two steps as the run, with /etc/hosts bound over itself: nothing changes.
    """
    if not shutil.which("unshare"):
        return "there is no unshare command (util-linux)"
    tried = subprocess.run([*UNSHARE, "/etc/hosts", "true"], capture_output=True, text=True)
    if tried.returncode == 0:
        return None
    return tried.stderr.strip() or f"unshare exited {tried.returncode}"


@nox.session(python="3.11")
def localhost6(session: nox.Session) -> None:
    """The suite where localhost resolves to ::1 first, as on many hosts, in a mount namespace of its own.

    The namespace sees a private /etc/hosts bound over the real one, so nothing outside
    the run changes. Where namespaces are not permitted the session cannot run: on CI
    that is a failure, on a developer's machine a skip, each with the reason.
    """
    refused = unshare_refused()
    if refused:
        reason = f"localhost6 needs a private mount namespace (unshare -m), refused here: {refused}"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            session.error(reason)
        session.skip(reason)
    install(session, ALL_EXTRAS)
    hosts = Path(session.create_tmp()) / "hosts"
    hosts.write_text(hosts_with_ipv6_first(Path("/etc/hosts").read_text()))
    # The cells' tests, and the ones that test localhost itself (heavy, so theirs alone).
    localhost_too = [*PYTEST, "-m", "not heavy or localhost"]
    session.run(*UNSHARE, str(hosts), *localhost_too, *session.posargs, external=True)
