"""TurnMetrics, the Prometheus adapter of the telemetry port: what one ended turn adds."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tactful.domain import ModelCall, Trace
from tactful.telemetry.base import INTERRUPTED, TurnEnded
from tactful.telemetry.metrics import OUTCOMES, TurnMetrics


def _values(metrics: TurnMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition()[0].decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _trace(*calls: ModelCall) -> Trace:
    return Trace(
        session_id="s",
        agent_id="a",
        model_calls=list(calls),
        stage_timings_ms={"match": 250.0, "compose": 1.5},
    )


def test_a_turn_adds_its_calls_tokens_and_cost_per_provider_and_model() -> None:
    metrics = TurnMetrics()
    trace = _trace(
        ModelCall(
            stage="match",
            model="gpt-4o-mini-2024-07-18",
            provider="openai",
            prompt_tokens=1000,
            cached_tokens=600,
            completion_tokens=50,
            latency_ms=800,
            cost_usd=0.0002,
        ),
        ModelCall(stage="compose", model="local", provider="vllm", prompt_tokens=90),
        ModelCall(stage="compose", model="local", provider="vllm", ok=False, error="timeout"),
    )
    metrics.turn_ended(TurnEnded(trace, "done", 1.2))
    values = _values(metrics)
    openai = (("model", "gpt-4o-mini-2024-07-18"), ("provider", "openai"))
    vllm = (("model", "local"), ("provider", "vllm"))
    assert values[("tactful_turns_total", (("outcome", "done"),))] == 1
    assert values[("tactful_turn_duration_seconds_sum", (("outcome", "done"),))] == 1.2
    assert values[("tactful_stage_duration_seconds_sum", (("stage", "match"),))] == 0.25
    assert values[("tactful_model_tokens_total", (("kind", "cached"), *openai))] == 600
    assert values[("tactful_model_tokens_total", (("kind", "prompt"), *vllm))] == 90
    assert values[("tactful_model_cost_usd_total", openai)] == 0.0002
    assert ("tactful_model_cost_usd_total", vllm) not in values
    assert values[("tactful_model_unpriced_calls_total", vllm)] == 1
    assert values[("tactful_model_errors_total", vllm)] == 1
    assert ("tactful_model_errors_total", openai) not in values
    call = (("model", "local"), ("outcome", "error"), ("provider", "vllm"), ("stage", "compose"))
    assert values[("tactful_model_calls_total", call)] == 1


def test_every_outcome_is_there_from_the_start_and_servers_count_apart() -> None:
    first, second = TurnMetrics(), TurnMetrics()
    first.turn_ended(TurnEnded(_trace(), INTERRUPTED, 0.1))
    turns = {labels: v for (n, labels), v in _values(second).items() if n == "tactful_turns_total"}
    assert turns == {(("outcome", o),): 0 for o in OUTCOMES}
    assert _values(first)[("tactful_turns_total", (("outcome", INTERRUPTED),))] == 1
    assert _values(second)[("tactful_turns_total", (("outcome", INTERRUPTED),))] == 0
