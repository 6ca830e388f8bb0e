"""The rule a canned response's template passes before it is stored (``check_template``)."""

from __future__ import annotations

import pytest

from tactful.domain.canned import check_template, template_error
from tactful.errors import ValidationError


def test_a_template_that_compiles_has_no_error() -> None:
    assert template_error("Hi {{ name }}") is None
    assert template_error("{% for i in items %}{{ i|upper }}{% endfor %}") is None


def test_a_syntax_error_is_named_with_its_line() -> None:
    assert (
        template_error("Hi {{ name")
        == "line 1: unexpected end of template, expected 'end of print statement'."
    )
    assert (
        template_error("Hi\n{% if %}")
        == "line 2: Expected an expression, got 'end of statement block'"
    )


def test_filters_the_sandbox_lacks_are_refused_when_written() -> None:
    assert template_error("{{ customer|tojson }}") == "line 1: No filter named 'tojson'."
    assert template_error("{{ name|shout }}") == "line 1: No filter named 'shout'."


def test_a_template_nested_too_deeply_is_an_authoring_error_not_a_crash() -> None:
    deep = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
    assert template_error(deep) == "the template is nested too deeply"


def test_check_template_answers_the_template_or_refuses_it_with_the_error() -> None:
    assert check_template("Hi {{ name }}") == "Hi {{ name }}"
    with pytest.raises(ValidationError) as refused:
        check_template("Hi {{ name")
    assert str(refused.value) == (
        "invalid canned response template: line 1: unexpected end of template, expected "
        "'end of print statement'."
    )
