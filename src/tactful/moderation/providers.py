"""The moderators the settings describe (docs/moderation.md): the content check ``auto`` runs
(the local rules, or OpenAI's moderation endpoint) and the jailbreak check ``paranoid`` adds.

OpenAI's endpoint is called only when ``moderation_provider`` is ``openai``, and only where
``outbound_hosts`` allows; the local checks never leave the process.
"""

from __future__ import annotations

import os

from tactful.config import Settings
from tactful.engine.moderation import Moderators
from tactful.moderation.base import Moderator
from tactful.moderation.jailbreak import JailbreakDetector
from tactful.moderation.rules import RuleModerator
from tactful.tools.outbound import OutboundPolicy


def build_moderators(settings: Settings) -> Moderators:
    """The content check and the jailbreak check, as configured."""
    patterns, words = settings.moderation_patterns, settings.moderation_words
    builtin = settings.moderation_builtin_rules
    content: Moderator
    if settings.moderation_provider == "openai":
        from tactful.moderation.openai import OpenAIModerator

        key = settings.moderation_api_key or settings.openai_api_key
        content = OpenAIModerator(
            settings.moderation_model,
            base_url=settings.moderation_base_url or settings.openai_base_url,
            api_key=key.get_secret_value() if key is not None else os.environ.get("OPENAI_API_KEY"),
            timeout_s=settings.moderation_timeout_s,
            outbound=OutboundPolicy(settings.outbound_hosts),
        )
    else:
        content = RuleModerator(builtin=builtin, patterns=patterns, words=words)
    jailbreak = JailbreakDetector.configured(builtin=builtin, patterns=patterns, words=words)
    return Moderators(content=content, jailbreak=jailbreak)
