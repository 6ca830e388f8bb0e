"""Agent definition files: Python files with ``async def define(server) -> tactful.Agent``.

``tactful serve --agent FILE`` and ``--example`` import such a file by path and call ``define``
on the running server; the SDK's upserts make that idempotent across restarts. After ``define``
succeeds, each agent it returned is pruned (``Agent.prune``): what the file no longer defines for
that agent leaves the server.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import tactful
from tactful.agent import Agent, Pruned
from tactful.domain import Agent as AgentModel
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


@dataclass(frozen=True)
class AgentSummary:
    id: str
    name: str
    guidelines: int
    observations: int

    def line(self) -> str:
        counts = f"{self.guidelines} guideline{'s' if self.guidelines != 1 else ''}"
        if self.observations:
            counts += f", {self.observations} observation{'s' if self.observations != 1 else ''}"
        return f"{self.name} (id {self.id}): {counts}"


async def summarize_agents(server: Server) -> list[AgentSummary]:
    """Every agent the server holds, with its guideline counts."""
    summaries = []
    for model in await server.entities(AgentModel):
        guidelines = await Agent(server, model).guidelines()
        observations = sum(1 for g in guidelines if g.is_observation)
        summaries.append(
            AgentSummary(model.id, model.name, len(guidelines) - observations, observations)
        )
    return summaries
