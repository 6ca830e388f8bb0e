"""Tool stubs: a scenario's tools answer from its stubs, so a test never touches real systems.

Each tool service of the server under test is wrapped by a ``StubbedService`` under the same
name: the tools, their parameters and argument checks stay the real service's (so matching and
argument filling are what production sees), but a call is answered by the first stub that fits
it. A call no stub fits fails with an error that says so, unless the scenario file lets that
service's tools really run (``real_tools``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from tactful.domain import ToolSpec
from tactful.errors import ValidationError
from tactful.scenarios.spec import ToolStub
from tactful.tools import (
    SessionControl,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolService,
)

# A stubbed timeout: the tool's budget shrinks to this, and the call waits past it.
TIMEOUT_S = 0.2


class StubbedService(ToolService):
    """``inner``'s tools, answered by ``stubs``; every call is kept in ``calls``."""

    def __init__(self, inner: ToolService, stubs: Sequence[ToolStub], *, real: bool) -> None:
        self.inner = inner
        self.name = inner.name
        self.stubs = list(stubs)
        self.real = real
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def list_tools(self) -> list[ToolSpec]:
        return await self.inner.list_tools()

    async def check_arguments(
        self, spec: ToolSpec, arguments: Mapping[str, Any], context: ToolContext
    ) -> None:
        await self.inner.check_arguments(spec, arguments, context)

    async def choices_for(self, tool: str, param: str, context: ToolContext) -> list[str] | None:
        return await self.inner.choices_for(tool, param, context)

    def tool_timeout_s(self, tool: str) -> float | None:
        if any(s.timeout for s in self._of(tool)):
            return TIMEOUT_S
        return self.inner.tool_timeout_s(tool)

    def _of(self, tool: str) -> list[ToolStub]:
        return [s for s in self.stubs if s.tool in (tool, f"{self.name}:{tool}")]

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        self.calls.append((tool, dict(arguments)))
        tool_id = f"{self.name}:{tool}"
        stub = next((s for s in self.stubs if s.fits(tool_id, arguments)), None)
        if stub is None:
            if self.real:
                return await self.inner.call(tool, arguments, context)
            raise ToolError(
                f"no stub for {tool_id} with arguments {arguments} (add one under `tools`, or "
                f"name the service {self.name!r} in `real_tools`)"
            )
        if stub.timeout:
            await asyncio.sleep(3600)  # cut by the tool's budget (TIMEOUT_S)
        if stub.error is not None:
            raise ToolError(stub.error)
        control = SessionControl.HANDOFF if stub.handoff else SessionControl.NONE
        return ToolResult(data=stub.result, fields=dict(stub.fields), control=control)

    async def close(self) -> None:
        await self.inner.close()


async def stub_tools(
    registry: ToolRegistry, stubs: Sequence[ToolStub], real: Sequence[str]
) -> list[StubbedService]:
    """Wrap every service of ``registry``; returns the wrappers (their ``calls``)."""
    known = {spec.id for spec in registry.specs()} | {spec.name for spec in registry.specs()}
    unknown = sorted({s.tool for s in stubs} - known)
    if unknown:
        raise ValidationError(f"stubs name tools the agent does not have: {', '.join(unknown)}")
    wrapped = []
    for service in registry.services():
        stubbed = StubbedService(service, stubs, real=service.name in real)
        await registry.replace_service(stubbed)
        wrapped.append(stubbed)
    return wrapped
