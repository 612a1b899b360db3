"""Shared by the benchmark modules: ratio reports printed after a module's benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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


@pytest.fixture(scope="module")
def medians(request: pytest.FixtureRequest, report_after: list[Report]) -> Iterator[dict[str, float]]:
    """Benchmarks record their medians here; the module's ``report(write, found)`` prints the ratios."""
    found: dict[str, float] = {}
    yield found
    report: Any = getattr(request.module, "report", None)
    if found and report is not None:
        report_after.append(lambda write: report(write, found))
