"""Agents: the unit of conversational configuration."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from tactful.domain.common import Entity
from tactful.domain.moderation import ModerationAction


class CompositionMode(StrEnum):
    """How the reply is written: freely, or from canned responses (strictest last)."""

    FLUID = "fluid"
    CANNED_FLUID = "canned_fluid"
    COMPOSITED = "composited_canned"
    STRICT = "strict_canned"

    @property
    def strictness(self) -> int:
        return list(CompositionMode).index(self)


class MessageOutputMode(StrEnum):
    BLOCK = "block"
    STREAM = "stream"


class Agent(Entity):
    collection: ClassVar[str] = "agents"
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    composition_mode: CompositionMode = CompositionMode.FLUID
    message_output_mode: MessageOutputMode = MessageOutputMode.BLOCK
    max_engine_iterations: int = Field(default=3, ge=1, le=10)
    no_match_reply: str = (
        "Sorry, I can't help with that here. Could you rephrase, or ask for a person?"
    )
    # Written replies follow the customer's language (templates always keep their wording).
    reply_in_customer_language: bool = True
    # Short acknowledgements sent before a reply that takes long ("Let me check that.").
    preambles: list[str] = Field(default_factory=list)
    # A preamble goes out when tools are about to run, or when the reply is not out this long
    # after the customer's message.
    preamble_after_ms: int = Field(default=2000, ge=0, le=60000)
    tags: list[str] = Field(default_factory=list)
    # Anonymous browsers may start a session with this agent and use only that session
    # (production mode; docs/security.md). Off unless turned on.
    guest_sessions: bool = False
    # What a customer message moderation flagged leads to, and the refusal's wording; None:
    # the server's moderation_action and moderation_refusal settings (docs/moderation.md).
    moderation_action: ModerationAction | None = None
    moderation_refusal: str | None = Field(default=None, min_length=1, max_length=2000)
