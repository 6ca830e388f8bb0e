"""Session-wide test settings."""

from __future__ import annotations

import os

import pytest

POSTGRES_ENV = "TACTFUL_TEST_POSTGRES_URL"


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return f"postgresql store tests: {url}"
    return f"postgresql store tests: SKIPPED ({POSTGRES_ENV} is not set)"
