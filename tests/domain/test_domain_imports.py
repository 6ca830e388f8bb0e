"""The domain is plain data and rules: of tactful it imports only itself and ``tactful.errors``
(a leaf), so the SDK, REST and the engine can all apply its rules. Read from every module's
source, so an import under ``TYPE_CHECKING`` or inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import tactful.domain

DOMAIN = Path(tactful.domain.__file__).parent
ALLOWED = ("tactful.domain", "tactful.errors")


def _imported(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Relative imports stay inside the domain package.
            names.append("tactful.domain" if node.level else node.module or "")
    return names


def test_the_domain_imports_only_itself_and_the_errors() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in sorted(DOMAIN.glob("*.py"))
        for name in _imported(path.read_text())
        if name.split(".")[0] == "tactful"
        and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
    }
    assert outside == set()


def test_the_errors_import_nothing_of_tactful() -> None:
    import tactful.errors

    source = Path(tactful.errors.__file__).read_text()
    assert [n for n in _imported(source) if n.split(".")[0] == "tactful"] == []
