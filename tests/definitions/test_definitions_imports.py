"""The definitions layer sits under the SDK, REST and files, and the SDK's handles do not loop
back to the server: read from the sources, so an import under ``TYPE_CHECKING`` or inside a
function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import tactful
import tactful.definitions

SRC = Path(tactful.__file__).parent


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _within(names: set[str], *packages: str) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in packages)}


def test_the_definitions_layer_imports_none_of_its_views() -> None:
    views = ("tactful.api", "tactful.cli", "tactful.agent", "tactful.journey", "tactful.server")
    found = {
        f"{path.name}: {name}"
        for path in sorted(Path(tactful.definitions.__file__).parent.glob("*.py"))
        for name in _within(_imported(path), *views)
    }
    assert found == set()


def test_the_sdk_handles_import_neither_the_server_nor_each_other_back() -> None:
    assert _within(_imported(SRC / "agent.py"), "tactful.server") == set()
    assert _within(_imported(SRC / "journey.py"), "tactful.server", "tactful.agent") == set()
