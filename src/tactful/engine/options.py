"""How the engine runs, as the settings model (``tactful.config``) configures it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tactful.engine.candidates import DEFAULT_K
from tactful.engine.canned import TemplateLimits
from tactful.engine.match import DEFAULT_OFFLINE_THRESHOLD
from tactful.engine.runner import RunnerOptions
from tactful.tools.outbound import OutboundPolicy


@dataclass
class EngineOptions:
    offline_threshold: float = DEFAULT_OFFLINE_THRESHOLD
    max_message_chars: int = 8000
    # Top-ranked guidelines checked in detail beyond the always-check set (the rest is screened).
    detailed_k: int = DEFAULT_K
    trace_candidates: int = 20
    tool_timeout_s: float = 15.0
    # Where tool services may connect (the outbound_hosts setting).
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # How far one canned-response render may go (size, steps, time).
    template_limits: TemplateLimits = field(default_factory=TemplateLimits)
    # Leases, recovery and draining of turns (engine.runner).
    runner: RunnerOptions = field(default_factory=RunnerOptions)
