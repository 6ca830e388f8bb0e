"""OpenAI's moderation endpoint through the official ``openai`` SDK
(``client.moderations.create``), against api.openai.com or any server speaking that protocol.

OpenAI's categories map onto Parlant's tags: ``harassment`` and ``harassment/threatening`` are
``harassment``, ``self-harm/intent`` is ``self-harm``, and so on; a category the map does not
know keeps its name before the slash.

Every connection goes only where the ``outbound_hosts`` setting allows (as for tool services:
``tools.outbound``); a refused one fails the check, which the engine lets through and traces.
"""

from __future__ import annotations

import openai

from tactful.errors import ConfigurationError
from tactful.moderation.base import ModerationCheck, ModerationFailed, Moderator
from tactful.tools.outbound import OutboundPolicy, OutboundRefused

DEFAULT_MODEL = "omni-moderation-latest"
# Local servers ignore the key, but the SDK refuses to start without one.
_PLACEHOLDER_API_KEY = "not-needed"


def tag_of(category: str) -> str:
    """Parlant's tag for one of OpenAI's categories ("self-harm/intent" -> "self-harm")."""
    return category.split("/", 1)[0]


class OpenAIModerator(Moderator):
    """Checks a message with OpenAI's moderation endpoint; the reason lists the categories
    flagged, each with its score."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        max_retries: int = 0,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        if not api_key and not base_url:
            raise ConfigurationError(
                "OpenAI moderation needs an API key or a base URL: set "
                "TACTFUL_MODERATION_API_KEY (or TACTFUL_OPENAI_API_KEY), or "
                "TACTFUL_MODERATION_BASE_URL to a server speaking the same protocol"
            )
        self.model = model
        self.name = f"openai:{model}"
        self._client = openai.AsyncOpenAI(
            api_key=api_key or _PLACEHOLDER_API_KEY,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=openai.DefaultAsyncHttpxClient(
                transport=(outbound or OutboundPolicy()).httpx2_transport()
            ),
        )

    async def check(self, text: str) -> ModerationCheck:
        try:
            response = await self._client.moderations.create(model=self.model, input=text)
        except OutboundRefused as e:
            raise ModerationFailed(f"outbound_hosts refused the connection: {e}") from e
        except openai.APIStatusError as e:
            hint = " (check the API key)" if e.status_code in (401, 403) else ""
            raise ModerationFailed(
                f"the moderation provider answered HTTP {e.status_code}{hint}"
            ) from e
        except openai.APITimeoutError as e:
            raise ModerationFailed(
                f"the moderation request to {self._client.base_url} timed out"
            ) from e
        except openai.APIConnectionError as e:
            raise ModerationFailed(
                f"could not connect to the moderation provider at {self._client.base_url}"
            ) from e
        except openai.OpenAIError as e:
            raise ModerationFailed(f"the moderation call failed: {type(e).__name__}") from e
        if not response.results:
            raise ModerationFailed("the moderation provider answered no result")
        result = response.results[0]
        flagged = result.categories.model_dump(by_alias=True)
        scores = result.category_scores.model_dump(by_alias=True)
        named = [c for c, on in flagged.items() if on]
        tags = tuple(dict.fromkeys(tag_of(c) for c in named))
        if not result.flagged and not tags:
            return ModerationCheck(flagged=False)
        reason = "; ".join(f"{c} ({float(scores.get(c) or 0.0):.2f})" for c in named)
        return ModerationCheck(
            flagged=True, tags=tags, reason=reason or "flagged, with no category named"
        )

    async def aclose(self) -> None:
        await self._client.close()
