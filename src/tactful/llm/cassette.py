"""Record and replay model calls: a conversation held once against a real model becomes a
regression test that replays with no model and no network.

``RecordingGenerator`` wraps a real adapter and writes every successful call to a cassette: one
JSON file, indented, one interaction per call, rewritten atomically after each call.
``ReplayingGenerator`` answers from that file: each call by the hash of what was asked (stage,
kind, schema and prompt), calls asked the same in the order they were recorded. A call that was
never recorded is a ``ModelError`` that says which call it is and how to re-record, so a turn
that took another path degrades the way a failing model does and the test sees it.

A cassette keeps the prompts only as a hash, plus the latest customer message of each prompt as
an excerpt to tell the calls apart; the answers are kept whole. Both hold the recorded
customer's words: treat a cassette like a transcript (docs/cassettes.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import Generation, Generator, OnText, Prompt, Streamed, T, Usage

__all__ = [
    "CASSETTE_VERSION",
    "Cassette",
    "Interaction",
    "RecordingGenerator",
    "ReplayingGenerator",
    "call_key",
    "with_cassette",
]

CASSETTE_VERSION = 1
EXCERPT_CHARS = 200
DEFAULT_HOW_TO_RECORD = (
    "run the conversation again with a model configured and TACTFUL_MODEL_CASSETTE_MODE=record "
    "(docs/cassettes.md)"
)
ABOUT = (
    "Model calls recorded by tactful's RecordingGenerator and answered by its ReplayingGenerator "
    "(docs/cassettes.md). Prompts are kept as hashes; the answers and excerpts hold the words of "
    "the recorded conversation, the customer's included: treat this file like a transcript."
)

Kind = Literal["generate", "stream"]
CassetteMode = Literal["record", "replay"]

# The engine writes conversations as "customer: ..." lines; the latest names the turn.
_CUSTOMER_LINE = re.compile(r"^customer: (.*)$", re.MULTILINE)


class TokenUsage(BaseModel):
    """What the recorded call cost, as the provider counted it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, usage: Usage) -> TokenUsage:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
        )

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
        )


class Interaction(BaseModel):
    """One recorded model call: what was asked (a hash and an excerpt) and what was answered.

    ``answer`` is the JSON the model answered to a ``generate`` call; ``text`` and ``pieces``
    are the whole answer to a ``stream`` call and the pieces it arrived in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str
    kind: Kind
    # The pydantic model the answer had to validate as (generate calls only).
    schema_name: str | None = None
    # The latest customer message in the prompt (else the start of its user part).
    excerpt: str = ""
    # sha256 of (stage, kind, schema name, schema JSON, system prompt, user prompt).
    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    # The schema JSON's own hash, to tell "the schema changed" from "the prompt changed".
    schema_hash: str | None = None
    provider: str
    model: str
    answer: Any = None
    text: str | None = None
    pieces: list[str] | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    latency_ms: float = Field(default=0.0, ge=0)
    # How many requests the adapter needed (2 after a repair retry); generate calls only.
    attempts: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _answered(self) -> Interaction:
        if self.kind == "generate" and (self.schema_name is None or self.answer is None):
            raise ValueError("a generate interaction needs its schema_name and answer")
        if self.kind == "stream" and (self.text is None or self.pieces is None):
            raise ValueError("a stream interaction needs its text and pieces")
        return self

    def describe(self) -> str:
        """The call in words, for error messages and reports."""
        return describe_call(self.kind, self.stage, self.schema_name, self.excerpt)


class Cassette(BaseModel):
    """A cassette file: its format version, how to record it again, and the interactions in
    the order the calls ended."""

    model_config = ConfigDict(extra="forbid")

    version: int = CASSETTE_VERSION
    about: str = ABOUT
    # Shown by a replay that misses: the command or setting that records this file again.
    how_to_record: str = DEFAULT_HOW_TO_RECORD
    # Whether the recorded model could stream: the replay says the same, so that the engine
    # asks it the same kind of calls.
    supports_streaming: bool = False
    interactions: list[Interaction] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read and check a cassette; a file that is missing, not JSON, of another version or
        of the wrong shape is a ``ConfigurationError`` that says which."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise ConfigurationError(
                f"there is no cassette at {path}: record it first ({DEFAULT_HOW_TO_RECORD})"
            ) from e
        except OSError as e:
            raise ConfigurationError(f"cannot read the cassette {path}: {e}") from e
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ConfigurationError(f"the cassette {path} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or "version" not in data:
            raise ConfigurationError(
                f"{path} is not a tactful cassette (no version field in a JSON object)"
            )
        if data["version"] != CASSETTE_VERSION:
            raise ConfigurationError(
                f"the cassette {path} has version {data['version']!r}, but this tactful reads "
                f"version {CASSETTE_VERSION}: record it again "
                f"({data.get('how_to_record') or DEFAULT_HOW_TO_RECORD})"
            )
        try:
            return cls.model_validate(data)
        except PydanticValidationError as e:
            raise ConfigurationError(
                f"the cassette {path} is not valid: {_describe_invalid(e)}"
            ) from e

    def dumps(self) -> str:
        """The file's text: indented, fields in their declared order, answers as answered."""
        data = self.model_dump(mode="json", exclude_none=True)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file, then a rename): a crash leaves the previous
        complete file, never half of one."""
        text = self.dumps()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644  # mkstemp's 0600 would surprise whoever commits the file
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def call_key(stage: str, kind: Kind, schema: type[BaseModel] | None, prompt: Prompt) -> str:
    """The hash a call is recorded and found under: stage, kind, schema name and JSON schema,
    system and user prompt. Any change to one of them is another call."""
    name, schema_json = _schema_identity(schema)
    material = json.dumps(
        [stage, kind, name, schema_json, prompt.system, prompt.user],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@lru_cache(maxsize=256)
def _schema_identity(schema: type[BaseModel] | None) -> tuple[str, str]:
    if schema is None:
        return "", ""
    return schema.__name__, json.dumps(
        schema.model_json_schema(), sort_keys=True, separators=(",", ":")
    )


def _schema_hash(schema: type[BaseModel]) -> str:
    return hashlib.sha256(_schema_identity(schema)[1].encode("utf-8")).hexdigest()[:16]


def excerpt_of(prompt: Prompt) -> str:
    """The latest customer message in the prompt (else the start of its user part), on one
    line and at most ``EXCERPT_CHARS`` long: enough for a person to tell which turn a call
    belongs to."""
    lines = _CUSTOMER_LINE.findall(prompt.user)
    text = " ".join((lines[-1] if lines else prompt.user).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def describe_call(kind: Kind, stage: str, schema_name: str | None, excerpt: str) -> str:
    """``generate call of stage 'match' (MatchAnswer) at 'where is my order?'``."""
    what = f"{kind} call of stage {stage!r}"
    if schema_name:
        what += f" ({schema_name})"
    return f"{what} at {excerpt!r}"


def _describe_invalid(exc: PydanticValidationError, limit: int = 5) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for error in errors[:limit]:
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more error(s)")
    return "; ".join(parts)


def _answered_json(result: Generation[T], schema: type[T]) -> Any:
    """The JSON the model answered, as a value: its raw text when that is the JSON object
    (most adapters), else the validated content (an adapter that keeps no raw text, or a
    fenced answer the adapter unwrapped)."""
    try:
        value = json.loads(result.raw) if result.raw.strip() else None
        if isinstance(value, dict):
            schema.model_validate(value)
            return value
    except (ValueError, PydanticValidationError):
        pass
    return result.content.model_dump(mode="json")


class RecordingGenerator(Generator):
    """Passes every call to ``inner`` and records each one that succeeds in the cassette at
    ``path``; a failed call is not recorded and raises as usual.

    The file is rewritten (atomically) after every call, so a crash keeps what was recorded.
    It is written from the first recorded call on, replacing an existing file unless
    ``append`` is true. ``how_to_record`` is kept in the file and quoted by a replay that misses
    a call (e.g. the command that regenerates the cassette). One process records one file,
    written in the event loop: cassettes are small, and recording is for development.
    """

    def __init__(
        self,
        inner: Generator,
        path: str | Path,
        *,
        how_to_record: str = DEFAULT_HOW_TO_RECORD,
        append: bool = False,
    ) -> None:
        self.inner = inner
        self.path = Path(path)
        self.model_name = inner.model_name
        self.provider = inner.provider
        self.supports_streaming = inner.supports_streaming
        if append and self.path.exists():
            self.cassette = Cassette.load(self.path)
            self.cassette.how_to_record = how_to_record
        else:
            self.cassette = Cassette(how_to_record=how_to_record)
        self.cassette.supports_streaming = inner.supports_streaming

    @property
    def interactions(self) -> list[Interaction]:
        """What was recorded so far, in the order the calls ended."""
        return list(self.cassette.interactions)

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        result = await self.inner.generate(prompt, schema, stage=stage, timeout_s=timeout_s)
        self._record(
            Interaction(
                stage=stage,
                kind="generate",
                schema_name=schema.__name__,
                excerpt=excerpt_of(prompt),
                key=call_key(stage, "generate", schema, prompt),
                schema_hash=_schema_hash(schema),
                provider=self.inner.provider,
                model=result.model,
                answer=_answered_json(result, schema),
                usage=TokenUsage.of(result.usage),
                latency_ms=round(result.latency_ms),
                attempts=result.attempts,
            )
        )
        return result

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        pieces: list[str] = []

        async def collect(piece: str) -> None:
            pieces.append(piece)
            await on_text(piece)

        result = await self.inner.stream(prompt, stage=stage, on_text=collect, timeout_s=timeout_s)
        self._record(
            Interaction(
                stage=stage,
                kind="stream",
                excerpt=excerpt_of(prompt),
                key=call_key(stage, "stream", None, prompt),
                provider=self.inner.provider,
                model=result.model,
                text=result.text,
                pieces=pieces,
                usage=TokenUsage.of(result.usage),
                latency_ms=round(result.latency_ms),
            )
        )
        return result

    def count_tokens(self, text: str) -> int:
        # The engine sizes match batches with it: the recorded prompts are the inner model's.
        return self.inner.count_tokens(text)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _record(self, interaction: Interaction) -> None:
        # No await between the append and the write: concurrent calls never interleave.
        self.cassette.interactions.append(interaction)
        try:
            self.cassette.save(self.path)
        except OSError as e:
            raise ConfigurationError(f"cannot write the cassette {self.path}: {e}") from e


class ReplayingGenerator(Generator):
    """Answers every call from the cassette at ``path``; it never calls a model or opens a
    connection.

    A call is answered by the recording with the same key (``call_key``); calls with the same
    key get the recordings in the order they were made. A generate answer is validated against
    the schema again. A call with no recording left is a ``ModelError`` naming the stage, the
    schema and the customer message, and saying how to re-record. With ``strict=False`` such a
    call takes the next unused recording of the same stage and schema instead (its prompt
    differs: see ``mismatches``), to see how far a changed agent still follows the recording.

    Usage and model come from the recording; ``latency_ms`` is the replay's own (tiny) time.
    ``timeout_s`` is accepted and not needed. ``unused()`` lists recordings no call asked for.
    """

    provider = "cassette"

    def __init__(self, path: str | Path, *, strict: bool = True) -> None:
        self.path = Path(path)
        self.strict = strict
        self.cassette = Cassette.load(self.path)
        recorded = self.cassette.interactions
        self.model_name = recorded[0].model if recorded else "cassette"
        # Who answered when it was recorded ("openai", ...), for the tier's description.
        self.recorded_provider = recorded[0].provider if recorded else "none"
        self.supports_streaming = self.cassette.supports_streaming
        self._by_key: dict[str, deque[int]] = {}
        for index, interaction in enumerate(recorded):
            self._by_key.setdefault(interaction.key, deque()).append(index)
        self._used = [False] * len(recorded)
        # Calls answered by a recording of another prompt (strict=False only).
        self.mismatches: list[str] = []

    def unused(self) -> list[Interaction]:
        """Recordings no call has asked for yet: after the conversation, an empty list means it
        took exactly the recorded path."""
        return [
            interaction
            for interaction, used in zip(self.cassette.interactions, self._used, strict=True)
            if not used
        ]

    async def generate(
        self, prompt: Prompt, schema: type[T], *, stage: str, timeout_s: float | None = None
    ) -> Generation[T]:
        started = time.perf_counter()
        interaction = self._take(stage, "generate", schema, prompt)
        raw = json.dumps(interaction.answer, ensure_ascii=False)
        try:
            content = schema.model_validate_json(raw)
        except PydanticValidationError as e:
            raise ModelError(
                f"cassette {self.path}: the recorded answer of the {interaction.describe()} does "
                f"not validate as {schema.__name__} any more ({_describe_invalid(e)}): the schema "
                f"changed since it was recorded; re-record it: {self.cassette.how_to_record}"
            ) from e
        return Generation(
            content=content,
            usage=interaction.usage.usage(),
            model=interaction.model,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            attempts=interaction.attempts or 1,
            raw=raw,
        )

    async def stream(
        self, prompt: Prompt, *, stage: str, on_text: OnText, timeout_s: float | None = None
    ) -> Streamed:
        started = time.perf_counter()
        interaction = self._take(stage, "stream", None, prompt)
        for piece in interaction.pieces or ():
            await on_text(piece)
        return Streamed(
            text=interaction.text or "",
            usage=interaction.usage.usage(),
            model=interaction.model,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _take(
        self, stage: str, kind: Kind, schema: type[BaseModel] | None, prompt: Prompt
    ) -> Interaction:
        """The recording that answers this call, marked used; a ModelError when there is none."""
        key = call_key(stage, kind, schema, prompt)
        waiting = self._by_key.get(key)
        if waiting:
            index = waiting.popleft()
            self._used[index] = True
            return self.cassette.interactions[index]
        name = schema.__name__ if schema is not None else None
        alike = [
            index
            for index, interaction in enumerate(self.cassette.interactions)
            if not self._used[index]
            and (interaction.stage, interaction.kind, interaction.schema_name)
            == (stage, kind, name)
        ]
        asked = describe_call(kind, stage, name, excerpt_of(prompt))
        if not self.strict and alike:
            index = alike[0]
            self._used[index] = True
            taken = self.cassette.interactions[index]
            self.mismatches.append(
                f"the {asked} was answered by the recording at {taken.excerpt!r} "
                "(its prompt differs)"
            )
            return taken
        raise ModelError(
            f"cassette {self.path}: no recording for the {asked}: "
            f"{self._why_missing(key, schema, alike)}. Re-record it: {self.cassette.how_to_record}"
        )

    def _why_missing(self, key: str, schema: type[BaseModel] | None, alike: list[int]) -> str:
        if key in self._by_key:
            recorded = sum(1 for i in self.cassette.interactions if i.key == key)
            return (
                f"it was recorded {recorded} time(s) and each recording was used: the "
                "conversation asks it more often than when it was recorded"
            )
        if not alike:
            return (
                "no unused recording of this stage and schema is left: the conversation took "
                "another path"
            )
        others = [self.cassette.interactions[index] for index in alike]
        if schema is not None and any(i.schema_hash != _schema_hash(schema) for i in others):
            return f"the schema {schema.__name__} changed since it was recorded"
        return (
            f"its prompt differs from the {len(others)} unused recording(s) of this stage and "
            f"schema (the next one is at {others[0].excerpt!r}): the agent's definitions, the "
            "engine's prompts or the conversation changed"
        )


def with_cassette(generator: Generator | None, path: Path, mode: CassetteMode) -> Generator:
    """The generator the runtime uses when a cassette is configured.

    ``record``: ``generator`` (the configured model) answers, and each call is recorded at
    ``path``. ``replay``: the cassette answers and ``generator`` is not used (it may be None:
    a replay needs no model provider, key or network).
    """
    if mode == "record":
        if generator is None:
            raise ConfigurationError(
                "recording a cassette (TACTFUL_MODEL_CASSETTE_MODE=record) needs a model to "
                "record: set TACTFUL_OPENAI_API_KEY, or TACTFUL_OPENAI_BASE_URL for an "
                "OpenAI-compatible server"
            )
        return RecordingGenerator(generator, path)
    if mode == "replay":
        return ReplayingGenerator(path)
    raise ConfigurationError(
        f"unknown cassette mode {mode!r}: TACTFUL_MODEL_CASSETTE_MODE is record or replay"
    )
