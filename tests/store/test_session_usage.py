"""A session's model usage, summed over its traces in one query: on SQLite (memory and file)
and PostgreSQL alike."""

from __future__ import annotations

from tactful.domain import Agent, Customer, ModelCall, ModelUsage, Session, Trace
from tactful.store.sql import SQLStore


async def _session(store: SQLStore) -> Session:
    agent = await store.create(Agent(name="a"))
    customer = await store.create(Customer(name="c"))
    return await store.create(Session(agent_id=agent.id, customer_id=customer.id))


async def _trace(store: SQLStore, session: Session, *calls: ModelCall) -> None:
    trace = Trace(session_id=session.id, agent_id=session.agent_id, model_calls=list(calls))
    trace.usage = ModelUsage.of(trace.model_calls)
    await store.upsert(trace)


def _call(
    cost: float | None, prompt: int = 100, cached: int = 40, completion: int = 10
) -> ModelCall:
    return ModelCall(
        stage="compose",
        model="m",
        prompt_tokens=prompt,
        cached_tokens=cached,
        completion_tokens=completion,
        cost_usd=cost,
    )


async def test_a_session_without_turns_used_nothing(store: SQLStore) -> None:
    session = await _session(store)
    assert await store.session_usage(session.id) == ModelUsage()
    assert await store.session_usage("no-such-session") == ModelUsage()


async def test_usage_sums_the_traces_of_one_session(store: SQLStore) -> None:
    session, other = await _session(store), await _session(store)
    await _trace(store, session, _call(0.5), _call(0.25, prompt=7, cached=0, completion=3))
    await _trace(store, session, _call(0.125))
    await _trace(store, session)  # an offline turn: no model call
    await _trace(store, other, _call(9.0))
    usage = await store.session_usage(session.id)
    assert usage == ModelUsage(
        model_calls=3,
        prompt_tokens=207,
        cached_tokens=80,
        completion_tokens=23,
        cost_usd=0.875,  # binary fractions: the sum is exact
        cost_complete=True,
    )


async def test_unpriced_calls_leave_the_cost_unknown_or_incomplete(store: SQLStore) -> None:
    session = await _session(store)
    await _trace(store, session, _call(None))
    usage = await store.session_usage(session.id)
    assert (usage.model_calls, usage.cost_usd, usage.cost_complete) == (1, None, False)
    await _trace(store, session, _call(0.5), _call(None))
    usage = await store.session_usage(session.id)
    assert (usage.model_calls, usage.cost_usd, usage.cost_complete) == (3, 0.5, False)


async def test_a_failed_call_counts_but_costs_nothing_known(store: SQLStore) -> None:
    session = await _session(store)
    failed = ModelCall(stage="match", model="m", ok=False, error="HTTP 500")
    await _trace(store, session, failed, _call(0.5))
    usage = await store.session_usage(session.id)
    assert (usage.model_calls, usage.prompt_tokens, usage.cost_usd) == (2, 100, 0.5)
    assert usage.cost_complete
