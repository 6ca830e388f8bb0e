"""How the engine runs, as the settings model (``tactful.config``) configures it.

The thresholds and timeouts below are written once, here: the settings take them as their
defaults, and so do the stages when built on their own (in tests, in benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.trace import Tracer

from tactful.domain.moderation import ModerationAction
from tactful.domain.pricing import PriceTable
from tactful.engine.candidates import DEFAULT_K, DEFAULT_MAX_FORCED
from tactful.engine.canned import TemplateLimits
from tactful.engine.runner import RunnerOptions
from tactful.tools.outbound import OutboundPolicy

# Offline tier: a guideline matches when its calibrated similarity reaches this.
OFFLINE_MATCH_THRESHOLD = 0.40
# Where the engine walks a journey by rules (offline, as it starts, after a tool state): a
# conditional transition holds when its condition is this similar to the latest message.
JOURNEY_CONDITION_THRESHOLD = 0.40
# A tool call is cut after this many seconds, unless the tool sets its own timeout.
TOOL_TIMEOUT_S = 15.0
# A code matcher, a transition's code condition or a hook is cut after this many seconds.
HOOK_TIMEOUT_S = 10.0
# A retriever is cut after this many seconds (the turn goes on without its data).
RETRIEVER_TIMEOUT_S = 10.0
# Every model call of a turn ends within this many seconds of the turn's start.
TURN_DEADLINE_S = 20.0
# A moderation check of a posted message is cut after this many seconds (it then goes on).
MODERATION_TIMEOUT_S = 5.0
# What the agent answers a message moderation flagged, when refusing (and no agent says else).
MODERATION_REFUSAL = (
    "I'm sorry, I can't help with that message. If you have a question about your order or "
    "our products, I'm happy to help."
)


@dataclass
class ModerationOptions:
    """What a flagged customer message leads to (an agent's own settings win), and how long a
    check may take (engine.moderation)."""

    action: ModerationAction = ModerationAction.REFUSE
    refusal: str = MODERATION_REFUSAL
    timeout_s: float = MODERATION_TIMEOUT_S


@dataclass
class EngineOptions:
    offline_threshold: float = OFFLINE_MATCH_THRESHOLD
    journey_condition_threshold: float = JOURNEY_CONDITION_THRESHOLD
    max_message_chars: int = 8000
    # Top-ranked guidelines checked in detail beyond the always-check set (the rest is screened).
    detailed_k: int = DEFAULT_K
    # Beyond this many guidelines checked in detail for other reasons than the ranking, forced
    # observations lowest-ranked first go to the screen: tier 1 stays within max_forced + k.
    max_forced: int = DEFAULT_MAX_FORCED
    trace_candidates: int = 20
    tool_timeout_s: float = TOOL_TIMEOUT_S
    hook_timeout_s: float = HOOK_TIMEOUT_S
    retriever_timeout_s: float = RETRIEVER_TIMEOUT_S
    # All model calls of a turn end within this many seconds of its start (None: no bound);
    # a call cut by it fails, and the turn takes its degraded path (llm.routing).
    turn_deadline_s: float | None = TURN_DEADLINE_S
    # Where tool services may connect (the outbound_hosts setting).
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # How far one canned-response render may go (size, steps, time).
    template_limits: TemplateLimits = field(default_factory=TemplateLimits)
    # Leases, recovery and draining of turns (engine.runner).
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    # What model calls cost (the model_prices setting); an empty table prices nothing.
    prices: PriceTable = field(default_factory=PriceTable)
    # Flagged customer messages: refuse, hand off or warn (the moderation_* settings).
    moderation: ModerationOptions = field(default_factory=ModerationOptions)
    # Where the turn's spans go; None: OpenTelemetry's global tracer (a no-op unless the
    # program configured a provider). The otel_endpoint setting gives one (telemetry.tracing).
    tracer: Tracer | None = None
