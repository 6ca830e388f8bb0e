"""The tool runtime: the port (``base``), Python ``@tactful.tool`` functions, and the runner
that calls one turn's tools in parallel with timeouts."""

from tactful.tools.base import SessionControl, ToolContext, ToolError, ToolResult, ToolService
from tactful.tools.python import (
    ChoiceProvider,
    PythonTool,
    PythonToolService,
    RegisteredTool,
    ToolArgumentsError,
    ToolParam,
    ToolRegistry,
    tool,
)
from tactful.tools.runner import ToolCall, ToolOutcome, run_tools, schema_problems

__all__ = [
    "ChoiceProvider",
    "PythonTool",
    "PythonToolService",
    "RegisteredTool",
    "SessionControl",
    "ToolArgumentsError",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "ToolParam",
    "ToolRegistry",
    "ToolResult",
    "ToolService",
    "run_tools",
    "schema_problems",
    "tool",
]
