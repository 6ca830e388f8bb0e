"""Agent files: what ``tactful serve --agent FILE`` (and ``--example``), ``tactful chat`` and
conversation tests load.

A Python file has ``async def define(server) -> tactful.Agent``: it is imported by path and
``define`` runs on the server; the SDK's upserts make that idempotent across restarts. After
``define`` succeeds, each agent it returned is pruned (``Agent.prune``): what the file no longer
defines for that agent leaves the server. All of it is one revision.

A YAML file (or a folder of them) is a definitions document (docs/definitions.md): the Python
files its ``code`` names are imported and their ``attach(server)`` run (tools, code matchers
and branches), then the document is applied as ``tactful apply`` does, pruning included.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import tactful
from tactful.agent import Agent
from tactful.definitions.apply import apply_document, read_document
from tactful.definitions.plan import ChangeAction
from tactful.definitions.prune import Pruned
from tactful.domain import Agent as AgentModel
from tactful.domain.audit import revision
from tactful.errors import TactfulError
from tactful.server import Server


class DefinitionError(TactfulError):
    """An agent file that is missing, cannot be imported, or whose ``define`` failed."""


def example_path() -> Path:
    """The bundled Voltmart example: from a checkout (editable install), else from the wheel."""
    checkout = Path(tactful.__file__).resolve().parents[2] / "examples" / "voltmart" / "agent.py"
    if checkout.is_file():
        return checkout
    bundled = importlib.resources.files("tactful") / "_examples" / "voltmart" / "agent.py"
    if isinstance(bundled, Path) and bundled.is_file():
        return bundled
    raise DefinitionError(
        f"the bundled Voltmart example is missing: neither {checkout} nor {bundled} exists"
    )


def _where(error: BaseException, path: Path) -> str:
    """``file:line`` of the deepest frame inside the agent file, for a one-line error."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f"{path}:{error.lineno}"
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def import_file(path: Path) -> tuple[ModuleType, Path]:
    """Import a Python file by path; its folder is importable while it loads (sibling modules).

    Returns the module and the file's resolved path.
    """
    path = path.expanduser().resolve()
    if not path.is_file():
        raise DefinitionError(f"agent file {path} does not exist")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"tactful_agent_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DefinitionError(f"agent file {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses look their module up here
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise DefinitionError(f"cannot import {_where(e, path)}: {type(e).__name__}: {e}") from e
    finally:
        sys.path.remove(folder)
    return module, path


async def load_agent_file(
    server: Server,
    path: Path,
    on_pruned: Callable[[Agent, Pruned], None] | None = None,
) -> list[Agent]:
    """Import ``path``, run its ``define(server)`` and prune each agent it returned of what the
    file no longer defines (see ``Agent.prune``); ``on_pruned`` hears of each agent pruned of
    something. Returns the agent(s) defined. A failed ``define`` prunes nothing."""
    if is_document(path):
        return await load_definitions(server, path, on_pruned)
    with revision(f"serve {path.name}"):
        return await _define(server, path, on_pruned)


async def _define(
    server: Server, path: Path, on_pruned: Callable[[Agent, Pruned], None] | None
) -> list[Agent]:
    module, path = import_file(path)
    define = getattr(module, "define", None)
    if not callable(define):
        raise DefinitionError(f"{path} defines no `async def define(server) -> tactful.Agent`")
    try:
        result = define(server)
        if inspect.isawaitable(result):
            result = await result
    except Exception as e:
        raise DefinitionError(
            f"define() in {_where(e, path)} failed: {type(e).__name__}: {e}"
        ) from e
    if result is None:
        agents: list[Agent] = []
    elif isinstance(result, Agent):
        agents = [result]
    elif isinstance(result, Iterable) and all(isinstance(a, Agent) for a in result):
        agents = list(result)
    else:
        raise DefinitionError(
            f"define() in {path} returned {type(result).__name__}; it should return a tactful.Agent"
        )
    for agent in agents:
        try:
            pruned = await agent.prune()
        except TactfulError as e:
            raise DefinitionError(f"pruning {agent.name!r} after {path} failed: {e}") from e
        if pruned and on_pruned is not None:
            on_pruned(agent, pruned)
    return agents


YAML_SUFFIXES = (".yaml", ".yml")


def is_document(path: Path) -> bool:
    """Whether ``path`` is a definitions document (a YAML file or a folder), not Python."""
    return path.is_dir() or path.suffix in YAML_SUFFIXES


def _folder_of(path: Path) -> Path:
    return path if path.is_dir() else path.parent


async def load_definitions(
    server: Server,
    path: Path,
    on_pruned: Callable[[Agent, Pruned], None] | None = None,
) -> list[Agent]:
    """Apply the definitions document at ``path`` (a YAML file or a folder of them), after
    running ``attach(server)`` of each Python file its ``code`` names (relative to the
    document). ``on_pruned`` hears of what the document's plan deleted."""
    from tactful.definitions.files import load_documents

    runtime = server.runtime
    base = _folder_of(path)
    agents = []
    try:
        documents = load_documents([path])
    except TactfulError as e:
        raise DefinitionError(f"cannot read {path}: {e}") from e
    for _, document in documents:
        for code in document.pop("code", None) or []:
            await _attach(server, base / str(code))
        try:
            wanted = await read_document(runtime.store, document)
            applied = await apply_document(
                runtime.store, runtime.engine.tools, wanted, summary=f"serve {path.name}"
            )
        except TactfulError as e:
            raise DefinitionError(f"cannot apply {path}: {e}") from e
        deleted = [c for c in applied.plan.changes if c.action is ChangeAction.DELETE]
        agent = Agent(server.runtime, await runtime.store.get(AgentModel, wanted.agent.id))
        if deleted and on_pruned is not None:
            pruned = Pruned()
            for c in deleted:
                getattr(pruned, _PRUNED_FIELDS.get(c.kind, "relationships")).append(c.id)
            on_pruned(agent, pruned)
        agents.append(agent)
    return agents


_PRUNED_FIELDS = {
    "journey": "journeys",
    "guideline": "guidelines",
    "observation": "observations",
    "canned_response": "canned_responses",
    "term": "terms",
    "capability": "capabilities",
    "variable": "variables",
}


async def _attach(server: Server, path: Path) -> None:
    """Import a Python file a document's ``code`` names and run its ``attach(server)``."""
    module, path = import_file(path)
    attach = getattr(module, "attach", None)
    if not callable(attach):
        raise DefinitionError(f"{path} has no `attach(server)` to register the agent's code")
    try:
        result = attach(server)
        if inspect.isawaitable(result):
            await result
    except Exception as e:
        raise DefinitionError(
            f"attach() in {_where(e, path)} failed: {type(e).__name__}: {e}"
        ) from e
