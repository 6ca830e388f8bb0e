"""A shallow check of a call's arguments against a tool's JSON schema, before it is sent.

For services that are not Python (MCP, OpenAPI): they validate in depth themselves, this only
keeps obviously wrong calls from being sent (``ToolService.check_arguments``' default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tactful.domain import ToolSpec

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def _fits(kind: str, value: Any) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(kind, (object,)))


def schema_problems(spec: ToolSpec, arguments: Mapping[str, Any]) -> list[str]:
    """A shallow check of ``arguments`` against a tool's JSON schema: required, unknown (when
    ``additionalProperties`` is false), and each top-level type, ``enum`` and ``const``."""
    properties: Mapping[str, Any] = spec.parameters.get("properties", {})
    required = dict.fromkeys([*spec.required, *spec.parameters.get("required", [])])
    problems = [f"{name}: missing (required)" for name in required if name not in arguments]
    for name, value in arguments.items():
        schema = properties.get(name)
        if schema is None:
            if spec.parameters.get("additionalProperties") is False:
                problems.append(f"{name}: unknown argument")
            continue
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if kinds and not any(_fits(k, value) for k in kinds):
            problems.append(f"{name}: expected {' or '.join(kinds)} (got {value!r:.60})")
        elif "enum" in schema and value not in schema["enum"]:
            problems.append(f"{name}: {value!r:.60} is not one of {schema['enum']!r}")
        elif "const" in schema and value != schema["const"]:
            problems.append(f"{name}: must be {schema['const']!r}")
    return problems
