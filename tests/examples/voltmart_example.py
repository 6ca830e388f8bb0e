"""Loading the Voltmart example by file path, as the CLI does (``define`` is the contract)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

AGENT_FILE = Path(__file__).resolve().parents[2] / "examples" / "voltmart" / "agent.py"


def load_example(module_name: str = "voltmart_agent_example") -> ModuleType:
    """A fresh copy of the example module (it loads its ``orders`` module itself)."""
    spec = importlib.util.spec_from_file_location(module_name, AGENT_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
