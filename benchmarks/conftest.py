"""Shared by the benchmark modules: ratio reports printed after a module's benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

Write = Callable[[str], None]
Report = Callable[[Write], None]


@pytest.fixture(scope="module")
def report_after(request: pytest.FixtureRequest) -> Iterator[list[Report]]:
    """Append ``report(write)`` callables; each runs after the module, past pytest's output capture."""
    reports: list[Report] = []
    yield reports
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not reports:
        return
    with capture.global_and_fixture_disabled():
        for report in reports:
            reporter.write_line("")
            report(reporter.write_line)
