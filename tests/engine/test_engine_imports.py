"""The engine depends on ports (``store.base``, ``bus.base``, ``llm.base``, ``telemetry.base``,
``moderation.base``, the tool runtime), never on an adapter or on the edge: read from every
engine module's source, so an import hidden under ``TYPE_CHECKING`` or inside a function counts
too."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import tactful.engine

ENGINE = Path(tactful.engine.__file__).parent

# Implementations of a port: the engine is given one, it never picks one.
ADAPTERS = (
    "tactful.llm.openai",
    "tactful.llm.anthropic",
    "tactful.llm.azure",
    "tactful.llm.litellm",
    "tactful.llm.structured",
    "tactful.llm.minilm",
    "tactful.llm.scripted",
    "tactful.store.sql",
    "tactful.store.turns",
    "tactful.store.schema",
    "tactful.store.sqlite_lock",
    "tactful.store.migrations",
    "tactful.bus.memory",
    "tactful.bus.postgres",
    "tactful.tools.python",
    "tactful.tools.mcp",
    "tactful.tools.openapi",
    "tactful.tools.services",
    "tactful.telemetry.metrics",
    "tactful.telemetry.tracing",
    "tactful.moderation.rules",
    "tactful.moderation.jailbreak",
    "tactful.moderation.openai",
    "tactful.moderation.providers",
)
# What sits at the edge and builds the engine: the engine never reaches back to it.
EDGE = (
    "tactful.api",
    "tactful.cli",
    "tactful.client",
    "tactful.server",
    "tactful.runtime",
    "tactful.agent",
    "tactful.journey",
    "tactful.config",
)
# Packages whose ``__init__`` re-exports adapters: import the port module itself instead.
FACADES = ("tactful", "tactful.tools", "tactful.store", "tactful.bus")


def _within(module: str, names: tuple[str, ...]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def _defined_in(package: str, name: str) -> str:
    """The module that defines what ``package`` exports as ``name``."""
    value = getattr(importlib.import_module(package), name, None)
    if isinstance(value, ModuleType):
        return value.__name__
    return str(getattr(value, "__module__", package))


def _problem(names: list[str]) -> str | None:
    """What is wrong with one imported name: ``names`` are what it may be, the most specific
    first (``from m import x`` may import the submodule ``m.x``, or a name of ``m``)."""
    for name in names:
        if _within(name, ADAPTERS):
            return f"imports the adapter {name}"
        if _within(name, EDGE):
            return f"imports {name}, from the edge"
    if names[-1] in FACADES:
        defined_in = _defined_in(names[-1], names[0].rsplit(".", 1)[-1])
        if _within(defined_in, ADAPTERS):
            return f"imports {names[0]}, from the adapter {defined_in}"
        return f"imports {names[-1]}, which re-exports adapters: import the port module"
    return None


def problems_of(source: str, package: str, where: str) -> list[str]:
    """The forbidden imports of a module of ``package``, as "where:line what"."""
    problems: dict[str, int] = {}
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            candidates = [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            candidates = [[f"{base}.{alias.name}", base] for alias in node.names]
        else:
            continue
        for names in candidates:
            if (problem := _problem(names)) is not None:
                problems[f"{where}:{node.lineno} {problem}"] = node.lineno
    return sorted(problems, key=problems.__getitem__)


def _package(path: Path) -> str:
    # tactful/engine/x.py and tactful/engine/x/__init__.py: "." is the folder they are in.
    return ".".join(path.relative_to(ENGINE.parent.parent).parts[:-1])


def test_every_engine_module_is_read() -> None:
    modules = {p.relative_to(ENGINE).as_posix() for p in ENGINE.rglob("*.py")}
    assert {"turn.py", "match.py", "tool_stage.py", "__init__.py"} <= modules


def test_the_engine_imports_no_adapter() -> None:
    problems = [
        problem
        for path in sorted(ENGINE.rglob("*.py"))
        for problem in problems_of(
            path.read_text(), _package(path), str(path.relative_to(ENGINE.parent.parent))
        )
    ]
    assert problems == []


def test_the_check_sees_adapter_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from tactful.llm.base import Generator\n"
        "from tactful.tools import ToolResult\n"
        "from tactful.store import sql\n"
        "from tactful.tools import ToolContext, PythonToolService\n"
        "from . import match\n"
        "if TYPE_CHECKING:\n"
        "    from tactful.tools.python import PythonToolService\n"
        "def f() -> None:\n"
        "    import tactful.llm.scripted\n"
        "    from ..server import Server\n"
        "    from .journeys import walk\n"
    )
    assert problems_of(source, "tactful.engine", "probe.py") == [
        "probe.py:3 imports tactful.tools, which re-exports adapters: import the port module",
        "probe.py:4 imports the adapter tactful.store.sql",
        "probe.py:5 imports tactful.tools, which re-exports adapters: import the port module",
        "probe.py:5 imports tactful.tools.PythonToolService, from the adapter tactful.tools.python",
        "probe.py:8 imports the adapter tactful.tools.python.PythonToolService",
        "probe.py:10 imports the adapter tactful.llm.scripted",
        "probe.py:11 imports tactful.server.Server, from the edge",
    ]
