"""The tool runtime: the port (``base``), the registry and the runner the engine uses, and
the adapters: Python ``@tactful.tool`` functions here, MCP and OpenAPI services in their own
modules (imported where used: their SDKs take a moment to load)."""

from tactful.tools.arguments import schema_problems
from tactful.tools.base import (
    SessionControl,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    ToolResult,
    ToolService,
)
from tactful.tools.python import (
    ChoiceProvider,
    PythonTool,
    PythonToolService,
    ToolParam,
    register_python,
    tool,
)
from tactful.tools.registry import RegisteredTool, ToolRegistry
from tactful.tools.runner import ToolCall, ToolOutcome, run_tools

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
    "register_python",
    "run_tools",
    "schema_problems",
    "tool",
]
