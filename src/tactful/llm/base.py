"""The model port: structured generation and embeddings.

Adapters (openai, scripted, local) implement these small ABCs; the engine depends only on them.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from tactful.errors import ModelError

T = TypeVar("T", bound=BaseModel)

Vectors = npt.NDArray[np.float32]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic token count (words and punctuation marks), close to BPE for English.

    A prompt is counted line by line (no token spans a line break), each distinct line once per
    process: a prompt repeats most of its lines from one turn to the next."""
    if "\n" not in text:
        return len(_TOKEN.findall(text))
    return sum(map(_line_tokens, text.split("\n")))


@lru_cache(maxsize=16384)
def _line_tokens(line: str) -> int:
    return len(_TOKEN.findall(line))


@dataclass(frozen=True)
class Prompt:
    """A prompt split into a stable prefix (cacheable by providers) and the turn-specific body."""

    system: str
    user: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens served from the provider's prompt cache (part of prompt_tokens).
    cached_tokens: int = 0


@dataclass(frozen=True)
class Attempt:
    """A request to a model that did not give the answer (it failed, or was never sent), as
    the trace records it beside the call that did."""

    model: str
    provider: str
    latency_ms: float
    error: str


@dataclass(frozen=True)
class Generation(Generic[T]):
    """A validated structured answer and what it cost.

    ``failed``: the attempts before this answer (retries, a model skipped or failed before its
    fallback answered); ``provider``: who answered, when the adapter knows better than its
    ``Generator.provider`` (a router)."""

    content: T
    usage: Usage
    model: str
    latency_ms: float
    attempts: int = 1
    raw: str = field(default="", repr=False)
    provider: str = ""
    failed: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Streamed:
    """A streamed plain-text answer, once complete, and what it cost (``provider`` and
    ``failed`` as for ``Generation``)."""

    text: str
    usage: Usage
    model: str
    latency_ms: float
    provider: str = ""
    failed: tuple[Attempt, ...] = ()


class ModelCallsFailed(ModelError):
    """Every model a call may use failed or was skipped; ``attempts`` says how, one by one."""

    def __init__(self, message: str, attempts: Sequence[Attempt]) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


def retryable_status(status: int) -> bool:
    """Whether an HTTP status from a provider is worth the same request again."""
    return status in (408, 409, 429) or status >= 500


# -- the turn's deadline ---------------------------------------------------------------------------

_deadline: ContextVar[float | None] = ContextVar("tactful_model_deadline", default=None)


@contextmanager
def model_deadline(seconds: float | None) -> Iterator[None]:
    """Bound the model time of what runs inside (a turn, with the tasks it starts): calls made
    within see ``model_time_left()`` shrink to zero ``seconds`` from now. None: no bound."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def model_time_left() -> float | None:
    """Seconds left before the current turn's deadline (negative once past); None without one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


# Called with each piece of text as it arrives.
OnText = Callable[[str], Awaitable[None]]


class Generator(ABC):
    """Structured generation: the model answers JSON that validates against ``schema``;
    adapters that can also stream plain text set ``supports_streaming``."""

    model_name: str
    # Which provider serves it ("openai", "anthropic", "litellm", ...), for traces and metrics.
    provider: str = "custom"
    supports_streaming: bool = False

    @abstractmethod
    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        """Ask the model; return its answer validated as ``schema``.

        ``timeout_s`` bounds each request of this call (the adapter's default when None): the
        caller sizes it to what is left of the turn's deadline. Raises
        ``tactful.errors.ModelError`` when the provider fails or the answer does not validate
        after one repair retry.
        """

    def count_tokens(self, text: str) -> int:
        """About how many prompt tokens ``text`` takes, to size batches to a budget; by default
        ``count_tokens`` (words and punctuation), which an adapter with its tokenizer may refine."""
        return count_tokens(text)

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        """Ask for plain text; await ``on_text`` with each piece as it arrives, and return the
        whole. Only for adapters with ``supports_streaming``; raises ``ModelError`` on failure.
        ``timeout_s`` as for ``generate``."""
        raise ModelError(f"model {self.model_name!r} cannot stream")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing
        """Release connections the adapter opened (called when the server stops)."""


class Embedder(ABC):
    """Sentence embeddings, L2-normalised, one row per text."""

    model_name: str
    dimensions: int

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Return a ``(len(texts), dimensions)`` float32 array of unit vectors."""

    def describe(self) -> str:
        """One line for the server's start: which model, and where it runs."""
        return f"{self.model_name} ({self.dimensions} dimensions)"

    def prepare(self) -> None:  # noqa: B027 - optional hook, most embedders need nothing
        """Get ready for the first call without waiting for it (called as the server starts:
        the offline embedder starts its process, which loads the model meanwhile)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most embedders hold nothing
        """Release connections the embedder opened (called when the server stops)."""


class BatchedEmbedder(Embedder):
    """An embedder that asks a provider's embeddings API: ``embed`` sends the texts in batches
    of ``batch_size`` (comfortably under every provider's per-request limit; OpenAI allows
    2048) and returns unit vectors; an adapter implements ``_embed_batch``."""

    batch_size: int = 256

    @abstractmethod
    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        """The provider's vectors for ``batch``, in its order, each ``dimensions`` long."""

    async def embed(self, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        if not items:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            rows.extend(await self._embed_batch(items[start : start + self.batch_size]))
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if np.any(norms == 0.0):
            raise ModelError(f"Embedding model {self.model_name!r} returned an all-zero vector.")
        unit: Vectors = (matrix / norms).astype(np.float32, copy=False)
        return unit
