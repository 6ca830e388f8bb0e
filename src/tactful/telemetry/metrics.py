"""Prometheus metrics of turns and model calls, served at ``GET /metrics`` (docs/telemetry.md).

Each ``TurnMetrics`` has its own registry (not prometheus_client's global one), so that several
servers in one process count apart. The numbers are this process's: with several processes,
scrape each one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from tactful.domain.turns import TurnStatus
from tactful.telemetry.base import INTERRUPTED, TurnEnded, TurnObserver

# Seconds. A turn waits on the model several times; a stage may take a millisecond.
TURN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

OUTCOMES = (*(s.value for s in TurnStatus if s.finished), INTERRUPTED)


class TurnMetrics(TurnObserver):
    """Counts turns, stage and model-call latencies, model calls, errors, tokens and cost,
    from each turn's trace as the turn ends."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        model = ["provider", "model"]
        self.turns = Counter(
            "tactful_turns", "Turns that ended in this process, by outcome", ["outcome"], registry=r
        )
        self.turn_seconds = Histogram(
            "tactful_turn_duration_seconds",
            "From a turn's claim to its terminal status",
            ["outcome"],
            buckets=TURN_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "tactful_stage_duration_seconds",
            "Time of each stage of a turn (as in the trace's stage_timings_ms)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.model_calls = Counter(
            "tactful_model_calls",
            "Model calls, by stage and outcome (ok or error)",
            [*model, "stage", "outcome"],
            registry=r,
        )
        self.model_seconds = Histogram(
            "tactful_model_call_duration_seconds",
            "Time of each model call, failed or not",
            model,
            buckets=MODEL_BUCKETS,
            registry=r,
        )
        self.model_errors = Counter(
            "tactful_model_errors", "Model calls that failed", model, registry=r
        )
        self.tokens = Counter(
            "tactful_model_tokens",
            "Tokens of model calls: prompt (cached ones included), cached, completion",
            [*model, "kind"],
            registry=r,
        )
        self.cost = Counter(
            "tactful_model_cost_usd",
            "US dollars of model calls, from the model_prices setting (priced calls only)",
            model,
            registry=r,
        )
        self.unpriced = Counter(
            "tactful_model_unpriced_calls",
            "Model calls whose model has no price in model_prices (their cost is unknown)",
            model,
            registry=r,
        )
        ProcessCollector(registry=r)
        # Every outcome from the start, so that rate() sees the first turn of each.
        for outcome in OUTCOMES:
            self.turns.labels(outcome)

    def turn_ended(self, turn: TurnEnded) -> None:
        self.turns.labels(turn.outcome).inc()
        self.turn_seconds.labels(turn.outcome).observe(turn.duration_s)
        for stage, ms in turn.trace.stage_timings_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000)
        for call in turn.trace.model_calls:
            model = (call.provider or "unknown", call.model)
            self.model_calls.labels(*model, call.stage, "ok" if call.ok else "error").inc()
            self.model_seconds.labels(*model).observe(call.latency_ms / 1000)
            if not call.ok:
                self.model_errors.labels(*model).inc()
                continue
            self.tokens.labels(*model, "prompt").inc(call.prompt_tokens)
            self.tokens.labels(*model, "cached").inc(call.cached_tokens)
            self.tokens.labels(*model, "completion").inc(call.completion_tokens)
            if call.cost_usd is None:
                self.unpriced.labels(*model).inc()
            else:
                self.cost.labels(*model).inc(call.cost_usd)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics in the format the ``Accept`` header asks for (Prometheus text by
        default, or OpenMetrics), and its content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
