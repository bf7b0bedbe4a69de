"""Reliability suite: faults (kill -9, SIGTERM, bad receivers, a full or read-only disk), hostile input
(hypothesis, schemathesis, SSRF bypasses, auth and size limits, secrets) and load (rate limits, back-pressure,
soak). The daemon runs as a subprocess (tests/integration's fixtures, reused) or in-process where a fault has
to be injected from inside.

`slow` tests (soak, many crash rounds, long schemathesis) run only with `--run-slow` or `ALERTD_SLOW=1`.
Measured figures are printed in the terminal summary (and written as JSON to $RELIABILITY_FIGURES if set)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The subprocess-daemon fixtures and the scriptable Receiver (imported, not copied): pytest sees these
# names in this conftest and offers them to every test under tests/reliability.
from tests.integration.conftest import http, make_receiver, receiver, start_daemon  # noqa: F401
from tests.reliability.helpers import FIGURES, NetNs

HERE = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    # Only seen when this conftest is an "initial" one (`pytest tests/reliability …`); a bare `pytest`
    # from the repository root loads it too late for options, so ALERTD_SLOW=1 is the portable switch.
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the reliability suite's slow tests (soak, many crash rounds, long fuzzing)")


def pytest_configure(config: pytest.Config) -> None:
    # Also belongs in pyproject's [tool.pytest.ini_options] markers; registered here so --strict-markers passes.
    config.addinivalue_line("markers", "slow: long reliability runs; skipped unless --run-slow or ALERTD_SLOW=1")


def slow_enabled(config: pytest.Config) -> bool:
    try:
        option = bool(config.getoption("--run-slow"))
    except ValueError:  # the option was never registered (conftest loaded late)
        option = False
    return option or os.environ.get("ALERTD_SLOW", "") not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if slow_enabled(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or ALERTD_SLOW=1")
    for item in items:
        if HERE in Path(str(item.path)).parents and item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def netns() -> Iterator[NetNs | None]:
    """A private network namespace (loopback only) when `ip netns` works here (root), else None."""
    ns = NetNs.create()
    yield ns
    if ns is not None:
        ns.delete()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for scenario, values in FIGURES.items():
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        terminalreporter.write_line(f"{scenario}: {shown}")
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
