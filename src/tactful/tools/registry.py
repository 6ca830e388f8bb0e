"""The registry of tools the engine may call, by id (``service:name``), and of the services
that run them. It knows services only through the port (``ToolService``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tactful.domain import ToolSpec, tool_id
from tactful.errors import ConflictError, NotFoundError
from tactful.tools.base import ToolService
from tactful.tools.outbound import OutboundPolicy, OutboundRefused

log = logging.getLogger("tactful.tools")


@dataclass(frozen=True)
class RegisteredTool:
    """A tool the engine may call: the service that runs it, its spec, its own timeout."""

    service: ToolService
    spec: ToolSpec
    timeout_s: float | None = None

    @property
    def tool_id(self) -> str:
        return self.spec.id


class ToolRegistry:
    """Every tool the engine knows, by id (``service:name``), and the services that run them.

    Registering is idempotent: the same tool or service again changes nothing (a service is
    listed again, to pick up tools it gained); a different one under a taken name is a
    ``ConflictError``. Services connect only where ``outbound`` allows (the server's
    ``outbound_hosts``; default: public addresses). ``@tactful.tool`` functions are registered
    with ``tactful.tools.python.register_python``.
    """

    def __init__(self, outbound: OutboundPolicy | None = None) -> None:
        self.outbound = outbound if outbound is not None else OutboundPolicy()
        self._services: dict[str, ToolService] = {}
        self._tools: dict[str, RegisteredTool] = {}

    def service(self, name: str) -> ToolService | None:
        """The service registered under ``name``, if any."""
        return self._services.get(name)

    def add(self, service: ToolService, spec: ToolSpec) -> RegisteredTool:
        """Register one tool of an in-process ``service`` (the service too, on first use),
        without listing the service's tools: for services that gain tools one by one."""
        known = self._services.get(service.name)
        if known is not None and known is not service:
            raise ConflictError(f"a different tool service is already named {service.name!r}")
        self._services[service.name] = service
        entry = RegisteredTool(service, spec, service.tool_timeout_s(spec.name))
        self._tools[spec.id] = entry
        return entry

    async def register_service(self, service: ToolService) -> list[RegisteredTool]:
        """Register a service and every tool it lists now (listing again refreshes them).

        Its URLs are checked against ``outbound`` before it connects (``OutboundRefused``,
        a ``ValidationError``, names the address and the setting that would allow it), and
        again once it has listed its tools (an OpenAPI spec may name its own server).
        """
        known = self._services.get(service.name)
        if known is not None and known is not service:
            raise ConflictError(f"a different tool service is already named {service.name!r}")
        await service.use_outbound(self.outbound)
        await self._check_outbound(service)
        specs = await service.list_tools()
        try:
            await self._check_outbound(service)
        except OutboundRefused:
            await service.close()
            raise
        self._services[service.name] = service
        for tid in [t for t, e in self._tools.items() if e.service is service]:
            del self._tools[tid]
        entries = []
        for spec in specs:
            tid = tool_id(service.name, spec.name)
            if (spec.id, spec.service_name) != (tid, service.name):
                # The id is how guidelines and traces name the tool, whatever the service said.
                spec = spec.model_copy(update={"id": tid, "service_name": service.name})
            entry = RegisteredTool(service, spec, service.tool_timeout_s(spec.name))
            self._tools[tid] = entry
            entries.append(entry)
        return entries

    async def replace_service(self, service: ToolService) -> list[RegisteredTool]:
        """Put ``service`` in the place of the one registered under its name, which stays open
        (a conversation test's stubs wrap the real services this way)."""
        replaced = self._services.pop(service.name, None)
        for tid in [t for t, e in self._tools.items() if e.service is replaced]:
            del self._tools[tid]
        return await self.register_service(service)

    async def _check_outbound(self, service: ToolService) -> None:
        for url in service.outbound_urls():
            try:
                await self.outbound.check(url)
            except OutboundRefused as e:
                raise OutboundRefused(f"tool service {service.name!r}: {e}") from None

    async def remove_service(self, name: str) -> bool:
        """Forget a service and its tools, and close it; False when none had that name."""
        service = self._services.pop(name, None)
        if service is None:
            return False
        for tid in [t for t, e in self._tools.items() if e.service is service]:
            del self._tools[tid]
        await service.close()
        return True

    def get(self, tool_id: str) -> RegisteredTool:
        """The tool with this id; ``NotFoundError`` if none is registered."""
        if tool_id not in self._tools:
            raise NotFoundError("tool", tool_id)
        return self._tools[tool_id]

    def __contains__(self, tool_id: object) -> bool:
        return tool_id in self._tools

    def specs(self) -> list[ToolSpec]:
        """Every registered tool's spec, in registration order."""
        return [e.spec for e in self._tools.values()]

    def services(self) -> list[ToolService]:
        """Every registered service, in registration order."""
        return list(self._services.values())

    async def close(self) -> None:
        """Close every service (connections, processes); errors are logged, not raised."""
        for service in self._services.values():
            try:
                await service.close()
            except Exception:
                log.warning("closing tool service %s failed", service.name, exc_info=True)
