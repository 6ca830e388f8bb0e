"""Fixtures for the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_process import SHOP_AGENT, Served, start_serve


@pytest.fixture(scope="module")
def served_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module's chat tests: transient, offline, the shop agent."""
    served = start_serve(
        ["--transient", "--agent", str(SHOP_AGENT)], tmp_path_factory.mktemp("serve")
    )
    try:
        yield served
    finally:
        served.stop()
