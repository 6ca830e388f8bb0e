"""Canned responses: exact templates with fields filled from this turn's data, and the rule a
template passes before it is stored (``check_template``), whichever way it is defined.

The engine renders templates in its sandbox (``engine.template_sandbox``); the check here
compiles them as that sandbox does (Jinja2's syntax, its filters and tests), so a template that
passes is one the sandbox can compile.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jinja2
from pydantic import BaseModel, Field

from tactful.domain.common import Entity
from tactful.errors import ValidationError

# HTML and debugging filters a chat message has no use for, and that print or grow whole values:
# the sandbox has none of them, so a template naming one is refused when it is written.
REMOVED_FILTERS = frozenset({"tojson", "pprint", "xmlattr", "urlize"})


class CannedResponseField(BaseModel):
    name: str
    description: str = ""
    examples: list[str] = Field(default_factory=list)


class CannedResponse(Entity):
    collection: ClassVar[str] = "canned_responses"
    value: str = Field(min_length=1, max_length=8000)
    fields: list[CannedResponseField] = Field(default_factory=list)
    signals: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    field_dependencies: list[str] = Field(default_factory=list)

    @property
    def template(self) -> str:
        return self.value


def _checking_environment() -> jinja2.Environment:
    """Jinja2 with the sandbox's filters and tests: compiling in it fails as the sandbox would."""
    environment = jinja2.Environment(autoescape=False)
    for name in REMOVED_FILTERS:
        del environment.filters[name]
    return environment


_CHECKER = _checking_environment()


def template_error(template: str) -> str | None:
    """None when the template compiles, else the error to show its author (with its line)."""
    try:
        _CHECKER.compile(template)
    except jinja2.TemplateSyntaxError as e:
        return f"line {e.lineno}: {e.message}"
    except RecursionError:
        return "the template is nested too deeply"
    return None


def check_template(template: str) -> str:
    """``template``, when it compiles; else ``ValidationError`` saying why."""
    if (error := template_error(template)) is not None:
        raise ValidationError(f"invalid canned response template: {error}")
    return template
