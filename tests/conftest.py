"""pytest's view of the suite: which tests are ``heavy``.

A heavy test runs a whole experiment for many seconds (the demo, every command on every
endpoint form, a pip build of the wheel, a hundred faulty connections), and what it
checks does not change with the Python or Twisted release. ``make test`` runs every
test; the cells of the version matrix (noxfile.py) run ``-m "not heavy"``, so that the
whole of CI stays within its time. The list is by name, here, so that trial (which
knows no markers) runs the same test modules unchanged.
"""

from __future__ import annotations

import pytest

HEAVY = {
    "tests/test_endpoints.py::CommandsTests::test_each_command_on_each_form",
    "tests/test_faults_engines.py::CommandTests::test_a_quarter_faulty_with_a_seed_is_the_same_every_run",
    "tests/test_plugin_install.py::PluginInstallTests::test_install_ships_no_cache_and_twistd_finds_all_four",
    "tests/test_plugin_install.py::PluginInstallTests::test_upgrade_over_an_earlier_versions_cache",
    "tests/test_signals.py::EngineSignalTests::test_every_engine_on_each_signal",
    "tests/test_signals.py::DemoSignalTests::test_the_demo_stops_its_servers",
    "tests/test_cli.py::DemoTests::test_demo_runs_every_engine_and_ranks_them",
    "tests/test_cli.py::DemoTests::test_demo_takes_a_comma_list_of_engines",
    "tests/test_cli.py::DemoTests::test_demo_leaves_no_server_behind",
    "tests/test_pictures.py::CommandTests::test_the_demo_draws_its_picture_by_default_and_shows_it_as_text",
    "tests/test_pictures.py::CommandTests::test_demo_timeline_has_a_panel_per_engine",
    "tests/test_pictures.py::CommandTests::test_no_timeline_writes_no_file_but_still_shows_the_text",
    "tests/test_every_engine.py::EndlessServerTests::test_every_engine_stops_at_the_limit",
    "tests/test_layers.py::LayerTests::test_each_engine_imports_alone_first",
    "tests/test_fd_exhaustion.py::FdExhaustionTests::test_no_empty_poem_passes_and_the_server_says_so_once",
    "tests/test_costdemo.py::CommandTests::test_the_demo_measures_every_placement_and_kind",
    "tests/test_readme.py::ReadmeRunsTests::test_every_engine_and_part_20",
}
#: Heavy as a whole: the commands with localhost as ::1 first, which the matrix's
#: localhost6 cell runs (and ``make test``); two twistd copies on one port, six times
#: over; memory measured by tracemalloc and by the peak RSS of real runs; a 10 MiB
#: request to a transform server that never reads, for every engine.
HEAVY_MODULES = {
    "tests/test_localhost.py",
    "tests/test_shared_port.py",
    "tests/test_memory.py",
    "tests/test_transform_stall.py",
    "tests/test_cold_burst.py",
    "tests/test_lab_browser.py",
}
#: Heavy, and run alone on the machine (``make test``'s first step): a burst whose count of
#: listen overflows the rest of the suite's load on two cores could change.
ALONE_MODULES = {"tests/test_cold_burst.py"}
#: Heavy by name: the twistd plugins' half-close tests (the commands' own stay light).
HEAVY_PREFIXES = ("tests/test_unusual_peers.py::",)


def heavy(nodeid: str) -> bool:
    if nodeid in HEAVY or nodeid.split("::", 1)[0] in HEAVY_MODULES:
        return True
    return nodeid.startswith(HEAVY_PREFIXES) and "::test_twistd_" in nodeid


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "heavy: a long experiment the version matrix's cells leave to make test"
    )
    config.addinivalue_line(
        "markers", "alone: a count that other tests' load could change; make test runs it first, by itself"
    )
    config.addinivalue_line(
        "markers", "localhost: tests of localhost either way, which the localhost6 cell runs"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if heavy(item.nodeid):
            item.add_marker(pytest.mark.heavy)
        if item.nodeid.split("::", 1)[0] in ALONE_MODULES:
            item.add_marker(pytest.mark.alone)
        if item.nodeid.startswith("tests/test_localhost.py"):
            item.add_marker(pytest.mark.localhost)
