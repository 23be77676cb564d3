"""The package's imports run one way, with no cycle.

From the top: the front ends (cli, the twistd plugins), then demo and session,
then clients, servers and the renderers of events (report, progress, timeline),
then events, then the sans-I/O core. Every import counts, including those made
inside a function to put off loading Twisted: a cycle through such an import is
still a cycle, only a later one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.time_limit import SynchronousTestCase

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "poetrynow"

#: Layer of each top-level name under poetrynow; a module may import its own layer or lower ones.
LAYERS = {
    "cli": 4, "plugins": 4, "plugin_options": 4, "twistd_usage": 4, "__main__": 4,
    "demo": 3, "demo_line": 3, "lab": 3, "costdemo": 3, "costruns": 3, "demo_servers": 3, "session": 3,
    "clients": 2, "servers": 2, "report": 2, "progress": 2, "timeline": 2, "tracing": 2, "relay": 2,
    "events": 1,
    "address": 0, "schedule": 0, "netstring": 0, "transforms": 0, "poems": 0, "validate": 0,
    "tables": 0, "interfaces": 0, "stopping": 0, "collector": 0, "descriptors": 0, "netcounters": 0,
    "faults": 0, "__init__": 0,
}  # fmt: skip
CORE = {name for name, layer in LAYERS.items() if layer <= 1}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every poetrynow module that ``path`` imports, at the top or in a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in known:
                found.add(name)
    return found


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


class LayerTests(SynchronousTestCase):
    def test_every_module_has_a_layer(self):
        self.assertEqual(sorted({top(name) for name in modules()} - set(LAYERS)), [])

    def test_no_import_cycle(self):
        # A package imports its own modules only to re-export; that edge is not a cycle's.
        edges = {
            name: {o for o in imports if not o.startswith(name + ".")} for name, imports in graph().items()
        }
        self.assertEqual(cycles(edges), [])

    def test_cycle_finder_finds_a_cycle(self):
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])

    def test_no_upward_import(self):
        upward = [
            (name, other)
            for name, imports in graph().items()
            for other in imports
            if LAYERS[top(other)] > LAYERS[top(name)]
        ]
        self.assertEqual(upward, [])

    def test_the_core_imports_nothing_from_cli_clients_or_servers(self):
        for name, imports in graph().items():
            if top(name) in CORE:
                self.assertEqual([o for o in imports if top(o) in ("cli", "clients", "servers")], [], name)

    def test_every_module_imports_in_a_fresh_interpreter(self):
        names = sorted(name for name in modules() if not name.endswith("__main__"))
        script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
        result = subprocess.run(
            [sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_each_engine_imports_alone_first(self):
        # Imported first, in a fresh interpreter, an engine cannot lean on another's import order.
        from poetrynow.clients import ENGINES

        script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
        for info in ENGINES.values():
            result = subprocess.run(
                [sys.executable, "-c", script, info.module], capture_output=True, text=True, timeout=60
            )
            self.assertEqual(result.returncode, 0, (info.name, result.stderr))

    def test_the_twistd_plugins_do_not_lean_on_argparse_front_ends(self):
        self.assertEqual([o for o in graph()["poetrynow.plugins"] if top(o) == "cli"], [])

    def test_a_module_past_300_lines_says_why_it_is_one_piece(self):
        # A long module is split by what a reader looks for, or its docstring says why not.
        long = []
        for path in [*sorted(PACKAGE.rglob("*.py")), *sorted((SRC.parent / "benchmarks").glob("*.py"))]:
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > 300 and "Over 300 lines" not in (ast.get_docstring(ast.parse(text)) or ""):
                long.append(str(path.relative_to(SRC.parent)))
        self.assertEqual(long, [])
