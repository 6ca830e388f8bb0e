"""Rendering canned responses: every failure disqualifies one template with a reason, renders run
off the event loop, and a turn with an abusive template still replies (issue 12)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tactful
from tactful.domain import Trace
from tactful.engine import canned
from tactful.engine.canned import Rendering, TemplateLimits
from tactful.llm.scripted import HashingEmbedder

NOTES = "internal: refund abuser, never mention"
GOOD = "Refunds take 5 business days, {{std.customer.name}}."
# Issue 12's reproductions, each a template on the same guideline as GOOD.
ABUSIVE = {
    "{{ 'x' * 10**7 }}": "builds a text of 10000000 characters (the limit is 4000)",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}": (
        "asks for a range of 100000 numbers (the limit is 10000)"
    ),
    "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}": (
        "takes more than 10000 steps (loop iterations, calls and filters)"
    ),
    "{{ range(100001)|length }}": "asks for a range of 100001 numbers (the limit is 10000)",
    "{{ customer }}": ("prints the whole mapping customer; use one of its fields instead"),
    "{{ std.customer }}": "prints the whole mapping std.customer; use one of its fields instead",
}
HEAVY = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 1 + 'a' }}", "failed: TypeError: unsupported operand type(s) for +: 'int' and 'str'"),
        ("{{ 1 / 0 }}", "failed: ZeroDivisionError: division by zero"),
        ("{{ 2.0 ** 10000 }}", "failed: OverflowError"),
        # Within the number limit, but past Python's own limit for printing integers.
        ("{{ 2 ** 15000 }}", "failed: ValueError: Exceeds the limit (4300 digits)"),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "failed: RecursionError"),
        ("{{ order_id.__class__.__mro__ }}", "unsafe template: access to attribute '__class__'"),
        ("Order {{ order_id", "syntax error: unexpected end of template"),
        ("{{ order_id|nosuchfilter }}", "syntax error: No filter named 'nosuchfilter'."),
        ("{{ transaction_id }}", "missing fields: transaction_id"),
        ("{{ std.customer.name }}", "missing fields: std.customer.name"),
        ("{% include 'other.txt' %}", "failed: TypeError: no loader for this environment"),
    ],
)
def test_every_failure_disqualifies_the_template_with_a_reason(template: str, reason: str) -> None:
    fields = {"order_id": "VM1", "std": {"customer": {}}}
    done = canned.render(template, fields)
    assert done.text is None
    assert done.reason is not None and done.reason.startswith(reason)


def test_missing_fields_are_listed_by_path() -> None:
    done = canned.render("{{ a }} {{ std.customer.name }}", {"std": {"customer": {}}})
    assert done == Rendering(None, ["a"], "missing fields: a")
    done = canned.render("Hi {{ std.customer.name }}", {"std": {"customer": {}}})
    assert done == Rendering(None, ["std.customer.name"], "missing fields: std.customer.name")


def test_one_bad_template_never_stops_the_others() -> None:
    jobs = [("{{ 1 / 0 }}", None), ("{{ customer }}", None), ("Hi {{ customer.name }}", None)]
    done = canned.render_many(jobs, {"customer": {"name": "Dana"}})
    assert [d.text for d in done] == [None, None, "Hi Dana"]


def test_fields_that_cannot_be_read_disqualify_instead_of_failing_the_turn() -> None:
    looped: list[Any] = []
    looped.append(looped)
    done = canned.render_many([("Hi", None), ("{{ x }}", None)], {"x": looped})
    assert [d.text for d in done] == [None, None]
    for d in done:
        assert (d.reason or "").startswith("the fields could not be read: RecursionError")


def test_generative_fields_are_scalars_too() -> None:
    template = "Sorry about the {{ generative.item }}."
    assert canned.render(template, {}, {"item": "kettle"}).text == "Sorry about the kettle."
    assert canned.render(template, {}, {}).missing == ["generative.item"]
    long = canned.render(template, {}, {"item": "k" * 5000})
    assert long.reason == "renders more than 4000 characters"
    whole = canned.render("{{ generative }}", {}, {})
    assert whole.reason == "prints the whole mapping generative; use one of its fields instead"


async def test_renders_run_off_the_event_loop() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    # About 0.3 s of rendering (the deadline stops it); the ticker must keep running meanwhile.
    limits = TemplateLimits(max_steps=10**8, timeout_s=0.3)
    before = ticks
    [done] = await canned.render_each([(HEAVY, None)], {}, limits)
    during = ticks - before
    ticker.cancel()
    assert done.reason == "takes longer than 0.3 s to render"
    assert during >= 5


async def test_render_each_renders_in_one_hop_and_in_order() -> None:
    jobs = [(f"{{{{ n }}}}-{i}", None) for i in range(10)]
    done = await canned.render_each(jobs, {"n": 7})
    assert [d.text for d in done] == [f"7-{i}" for i in range(10)]
    assert await canned.render_each([], {}) == []


# -- whole turns ---------------------------------------------------------------------------------


async def _shop(server: tactful.Server, templates: list[str]) -> tactful.Agent:
    """An agent whose one guideline always applies, with ``templates`` as its canned responses
    (their ids are the templates' positions: ``t0``, ``t1`` ...)."""
    agent = await server.create_agent("Shop", no_match_reply="Let me get a person.")
    responses = [await agent.create_canned_response(t, id=f"t{i}") for i, t in enumerate(templates)]
    refund = await agent.create_guideline(
        "the customer asks for a refund", "explain refunds", canned_responses=responses
    )
    await agent.match_always(refund)
    return agent


async def _turn(server: tactful.Server, agent: tactful.Agent) -> tuple[str, Trace]:
    customer = await server.create_customer("Dana", metadata={"notes": NOTES, "tier": "gold"})
    session = await server.create_session(agent, customer)
    reply = await asyncio.wait_for(server.send(session, "I want a refund"), 60)
    return reply.data["message"], await server.runtime.store.get(Trace, reply.trace_id)


def _reasons(trace: Trace) -> dict[str, Any]:
    return {d.id: d.reason for d in trace.composition.disqualified}


async def test_a_turn_with_abusive_templates_replies_with_the_good_one() -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent = await _shop(s, [*ABUSIVE, GOOD])
        text, trace = await _turn(s, agent)
        assert text == "Refunds take 5 business days, Dana."
        assert _reasons(trace) == {f"t{i}": reason for i, reason in enumerate(ABUSIVE.values())}


@pytest.mark.parametrize("template", list(ABUSIVE))
async def test_an_abusive_template_alone_gives_the_no_match_reply(template: str) -> None:
    async with tactful.Server(transient=True, embedder=HashingEmbedder(), offline=True) as s:
        agent = await _shop(s, [template])
        text, trace = await _turn(s, agent)
        assert text == "Let me get a person."
        assert list(_reasons(trace).values()) == [ABUSIVE[template]]
        assert NOTES not in trace.model_dump_json()


async def test_the_settings_reach_the_renderer() -> None:
    settings = tactful.Settings(template_max_chars=100)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as s:
        agent = await _shop(s, ["y" * 101, "x" * 100])
        text, trace = await _turn(s, agent)
        assert text == "x" * 100
        assert list(_reasons(trace).values()) == ["renders more than 100 characters"]


async def test_a_heavy_template_never_holds_up_the_event_loop() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    # Enough steps for hours of work: only the 1 s deadline (the default) stops the render.
    settings = tactful.Settings(template_max_steps=10_000_000)
    async with tactful.Server(
        transient=True, embedder=HashingEmbedder(), offline=True, settings=settings
    ) as s:
        agent = await _shop(s, [HEAVY, GOOD])
        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        text, trace = await _turn(s, agent)
        during = ticks - before
        ticker.cancel()
        assert text == "Refunds take 5 business days, Dana."
        assert "takes longer than 1 s to render" in _reasons(trace).values()
        # A second of rendering: a loop that kept running ticked many times meanwhile.
        assert during >= 20


def test_a_template_nested_too_deeply_fails_its_render_not_the_turn() -> None:
    deep = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
    assert (canned.render(deep, {}).reason or "").startswith("failed: RecursionError")
