"""The bounded sandbox templates render in: ordinary templates still render; work, size and
whole-mapping printing are refused with a reason (issue 12's reproductions among them)."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from tactful.config import Settings
from tactful.domain.canned import REMOVED_FILTERS, template_error
from tactful.engine import canned
from tactful.engine.canned import Rendering, TemplateLimits
from tactful.engine.template_sandbox import TemplateEnvironment

SECRET = "internal: refund abuser, never mention"
DEFAULTS = TemplateLimits()


def _fields() -> dict[str, Any]:
    """Fields shaped like templates.turn_fields plus a tool result and a variable."""
    customer = {"name": "Dana", "tier": "gold", "notes": SECRET}
    agent = {"name": "Volt"}
    return {
        "std": {"customer": customer, "agent": agent},
        "customer": customer,
        "agent": agent,
        "agent_name": "Volt",
        "customer_name": "Dana",
        "order_id": "VM12345678",
        "order": {
            "status": "shipped",
            "items": [{"name": "kettle", "price": 30}, {"name": "toaster", "price": 45}],
        },
        "tags": ["new", "gold"],
        "loyalty_points": 1200,
    }


def _render(template: str, limits: TemplateLimits = DEFAULTS) -> Rendering:
    return canned.render(template, _fields(), limits=limits)


def _refused(template: str, limits: TemplateLimits = DEFAULTS) -> str:
    """The reason the template is disqualified (it must be)."""
    done = _render(template, limits)
    assert done.text is None, f"{template!r} rendered {done.text[:80]!r}"
    assert done.reason
    return done.reason


# -- ordinary templates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("Hi {{std.customer.name}}, {{std.agent.name}} here.", "Hi Dana, Volt here."),
        ("{{ customer_name }} / {{ agent_name }} / {{ customer.tier }}", "Dana / Volt / gold"),
        ("Order {{order_id}} is {{ order.status|upper }}.", "Order VM12345678 is SHIPPED."),
        (
            "{% for item in order['items'] %}{{ item.name }} ({{ item.price }}){% if not "
            "loop.last %}, {% endif %}{% endfor %}",
            "kettle (30), toaster (45)",
        ),
        ("{{ order['items']|map(attribute='name')|join(', ') }}", "kettle, toaster"),
        ("Total: {{ order['items']|sum(attribute='price') }}", "Total: 75"),
        ("{{ tags|join(' & ') }}", "new & gold"),
        ("{{ 'Dear ' ~ customer.name ~ '!' }}", "Dear Dana!"),
        ("{{ '%s has %d points'|format(customer.name, loyalty_points) }}", "Dana has 1200 points"),
        ("{{ '%.1f%%' % 12.345 }}", "12.3%"),
        ("{{ customer.nickname|default('friend') }}", "friend"),
        ("{% if customer.tier == 'gold' %}Gold!{% else %}Hi{% endif %}", "Gold!"),
        ("{% set n = loyalty_points // 100 %}{{ n }} vouchers", "12 vouchers"),
        ("{% macro b(x) %}[{{ x }}]{% endmacro %}{{ b(order_id) }}", "[VM12345678]"),
        ("{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ ([1, 2] + [3])|join(', ') }}", "ababab 1024 1, 2, 3"),
        ("{{ (customer.notes|length) > 3 }}", "True"),
        ("{{ 'kettle'|center(10) }}|{{ 'a\nb'|indent(2) }}", "  kettle  |a\n  b"),
        ("{{ 'one two three'|wordwrap(7) }}", "one two\nthree"),
        ("{{ 'a-b-c'|replace('-', ', ') }}", "a, b, c"),
    ],
)
def test_ordinary_templates_still_render(template: str, text: str) -> None:
    assert _render(template) == Rendering(text)


# -- issue 12's reproductions --------------------------------------------------------------------


def test_a_huge_repeated_text_is_refused_before_it_is_built() -> None:
    reason = _refused("{{ 'x' * 10**7 }}")
    assert reason == "builds a text of 10000000 characters (the limit is 4000)"


def test_a_huge_power_is_refused_before_it_is_computed() -> None:
    # Computing 10**(10**8) would take minutes and a lot of memory; this returns at once.
    assert "computes a number of about 100000001 digits" in _refused("{{ 10 ** (10 ** 8) }}")


def test_nested_range_loops_run_out_of_steps() -> None:
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    assert "range of 100000 numbers" in _refused(template)
    # Within the range limit, the loops' iterations run out of the step budget.
    small = "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}"
    assert _refused(small).startswith("takes more than 10000 steps")


def test_a_range_too_long_is_refused_not_an_uncaught_overflow() -> None:
    assert "range of 100001 numbers (the limit is 10000)" in _refused("{{ range(100001)|length }}")
    assert "range of" in _refused("{{ range(10**30)|length }}")


@pytest.mark.parametrize(
    ("template", "what"),
    [
        ("{{ customer }}", "prints the whole mapping customer"),
        ("{{ std.customer }}", "prints the whole mapping std.customer"),
        ("{{ std }}", "prints the whole mapping std"),
        ("{{ order['items'][0] }}", "prints the whole mapping order.items[0]"),
        ("{{ tags }}", "prints a whole list"),
        ("{{ {'a': customer.notes} }}", "prints a whole mapping"),
        ("{{ namespace(a=1) }}", "prints a whole object (Namespace)"),
    ],
)
def test_a_whole_mapping_list_or_object_is_never_printed(template: str, what: str) -> None:
    assert _refused(template).startswith(what)


@pytest.mark.parametrize(
    "template",
    [
        "{{ customer|string }}",
        "{{ customer|upper }}",
        "{{ customer|e }}",
        "{{ customer|truncate(500) }}",
        "{{ customer ~ '' }}",
        "{{ '%s' % customer }}",
        "{{ '%s' % (customer,) }}",
        "{{ '%(notes)s' % customer }}",
        "{{ '%s'|format(customer) }}",
        "{{ '{}'.format(customer) }}",
        "{{ '{0.notes}'.format(customer) }}",
        "{{ ''.join(customer) }}",
        "{{ customer|join(', ') }}",
        "{{ customer|list }}",
        "{{ customer|items|list|join }}",
        "{{ customer|dictsort|join }}",
        "{{ customer.values()|join }}",
        "{{ customer.items()|join }}",
        "{% for k in customer %}{{ k }}={{ customer[k] }} {% endfor %}",
        "{% for k, v in customer|items %}{{ k }}={{ v }} {% endfor %}",
        "{{ dict(customer)|join }}",
        "{{ customer|tojson }}",
        "{{ customer|pprint }}",
        "{{ customer|xmlattr }}",
        "{{ customer|urlencode }}",
        "{{ [customer]|join }}",
        "{{ [customer]|map('string')|join }}",
        "{{ std|attr('customer')|string }}",
        "{% set c %}{{ customer }}{% endset %}{{ c }}",
        "{% filter upper %}{{ customer }}{% endfilter %}",
        "{{ customer._values|string }}",
        "{{ customer|attr('_values')|string }}",
        "{{ customer['_values']|string }}",
        "{% set c = customer %}{{ c }}",
    ],
)
def test_no_filter_method_or_operator_turns_a_whole_mapping_into_text(template: str) -> None:
    done = _render(template)
    assert done.text is None and done.reason, done
    assert SECRET not in done.reason


def test_the_secret_field_can_still_be_printed_by_name() -> None:
    # Authors may print any field they name; what is refused is dumping them all.
    assert _render("{{ customer.notes }}").text == SECRET


# -- size ----------------------------------------------------------------------------------------


def test_output_is_stopped_as_soon_as_it_passes_the_limit() -> None:
    limits = TemplateLimits(max_chars=100)
    assert _render("x" * 100, limits).text == "x" * 100
    assert _refused("x" * 101, limits) == "renders more than 100 characters"
    many = "{% for i in range(500) %}{{ order_id }}{% endfor %}"
    assert _refused(many, limits) == "renders more than 100 characters"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 'x' * 5000 }}", "builds a text of 5000 characters"),
        ("{{ ('x' * 3000) + ('y' * 3000) }}", "builds a text of 6000 characters"),
        ("{{ ('x' * 3000) ~ ('y' * 3000) }}", "builds a text of 6000 characters"),
        ("{{ [1] * 100000 }}", "builds a sequence of 100000 items"),
        ("{{ 2 ** 100000 }}", "computes a number of about 30103 digits"),
        ("{{ (2 ** 10000) * (2 ** 10000) }}", "computes a number of about"),
        ("{{ '%999999999d' % 1 }}", "formats a text of 1000000011 characters"),
        ("{{ '%.999999999f' % 1.5 }}", "formats a text of"),
        ("{{ '%*d' % (999999999, 1) }}", "uses a % format whose width comes from the values"),
        ("{{ '%(a(b))999999999s' % {'a(b)': 1} }}", "formats with a whole mapping"),
        ("{{ '%999999999s'|format(1) }}", "formats a text of"),
        ("{{ 'x'|center(1000000000) }}", "centers a text in a width of 1000000000"),
        ("{{ 'x\ny'|indent(10**9) }}", "indents a text of"),
        ("{{ 'x\ny'|indent('z' * 3000, true) }}", "indents a text of"),
        ("{{ 'ab'|replace('', 'x' * 4000) }}", "replaces into a text of 12002 characters"),
        ("{{ 'abc'|wordwrap(1, wrapstring='y' * 4000) }}", "builds a text of"),
        ("{{ ('&' * 3000)|e }}", "builds a text of 15000 characters"),
        ("{{ ([[1] * 9000] * 9000)|sum(start=[]) }}", "sums from something other than a number"),
        ("{{ [1]|batch(10**8, 'x')|list }}", "builds a sequence of 100000000 items"),
        ("{{ [1]|slice(10**8)|list }}", "builds a sequence of 100000000 items"),
        (
            "{% macro m() %}{% for i in range(3000) %}ab{% endfor %}{% endmacro %}{{ m()|length }}",
            "builds a text of 4002 characters",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}",
            "builds a text of 4096 characters",
        ),
    ],
)
def test_growth_is_refused_before_it_is_computed(template: str, reason: str) -> None:
    assert reason in _refused(template)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'.center(10**9) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'.rjust(10**9) }}",
        "{{ '1'.zfill(10**9) }}",
        "{{ '\t'.expandtabs(10**9) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{x:>999999999}'.format_map({'x': 1}) }}",
        "{{ ('x' * 4000).replace('x', 'x' * 4000) }}",
        "{{ ('x' * 4000).translate({120: 'y' * 4000}) }}",
        "{{ ('x' * 4000).join(['a'] * 4000) }}",
    ],
)
def test_str_methods_that_grow_a_text_are_not_available(template: str) -> None:
    assert _refused(template).startswith("unsafe template: access to attribute")


def test_lipsum_is_gone() -> None:
    # lipsum(n) writes n paragraphs of filler: not a field, so the template lacks it.
    assert _render("{{ lipsum(10**6) }}").missing == ["lipsum"]


# -- work ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        # Loops over literal lists and strings count too.
        "{% for a in [1] * 9000 %}{% for b in [1, 2] %}{% endfor %}{% endfor %}",
        "{% for c in 'x' * 4000 %}{% for d in 'abc' %}{% endfor %}{% endfor %}",
        # Calls: macros, and the recursive loop's loop(...).
        "{% macro m() %}{% endmacro %}{% for i in range(6000) %}{{ m() }}{{ m() }}{% endfor %}",
        "{% for a in range(6000) if a is odd %}{{ loop.cycle('', '') }}{% endfor %}"
        "{% for a in range(6000) %}{% endfor %}",
        "{% for a in [[[]] * 9000] recursive %}{{ loop(a) }}{% endfor %}",
        # Filters, one step each (map applies one per item).
        "{% for i in range(4000) %}{{ i|abs|abs|string|trim }}{% endfor %}",
    ],
)
def test_every_iteration_call_and_filter_is_a_step(template: str) -> None:
    limits = TemplateLimits(max_chars=1_000_000)
    assert _refused(template, limits).startswith("takes more than 10000 steps")


def test_a_render_stops_at_its_deadline() -> None:
    # 10**8 steps allowed: only the 50 ms deadline stops this (it would run for minutes).
    limits = TemplateLimits(max_steps=10**8, timeout_s=0.05)
    template = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    assert _refused(template, limits) == "takes longer than 0.05 s to render"


def test_the_renderer_defaults_are_the_settings_defaults() -> None:
    fields = Settings.model_fields
    assert TemplateLimits() == TemplateLimits(
        max_chars=fields["template_max_chars"].default,
        max_steps=fields["template_max_steps"].default,
        timeout_s=fields["template_timeout_s"].default,
    )


@pytest.mark.parametrize(
    "template",
    [
        "Hi {{ name }}",
        "Hi {{ name",
        "Hi\n{% if %}",
        "{{ customer|tojson }}",
        "{{ name|shout }}",
        "{% if n is prime %}x{% endif %}",
        "{% block a %}{% endblock %}{% block a %}{% endblock %}",
        "{% for x in xs %}{{ loop.index|string|center(3) }}{% endfor %}",
    ],
)
def test_the_sandbox_compiles_what_the_creation_rule_admits(template: str) -> None:
    # domain.canned.template_error checks templates when they are written, without the engine:
    # it must refuse exactly what the sandbox cannot compile, with the same message.
    try:
        canned.template_fields(template)
        compiled = None
    except jinja2.TemplateSyntaxError as e:
        compiled = f"line {e.lineno}: {e.message}"
    assert template_error(template) == compiled


def test_the_sandbox_has_the_filters_and_tests_of_the_creation_rule() -> None:
    sandbox, plain = TemplateEnvironment(), jinja2.Environment()
    assert set(sandbox.filters) == set(plain.filters) - REMOVED_FILTERS
    assert set(sandbox.tests) == set(plain.tests)
