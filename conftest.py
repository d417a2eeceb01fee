"""Shared by tests/ and integration/: under CI=true a skipped test fails.

Integration tests may skip on a user's machine without RELION, but CI installs everything
they need, so a skip there means a missing install step.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Turn a skip into a failure when running under CI=true (xfail is left alone)."""
    outcome = yield
    report = outcome.get_result()
    if _ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"
