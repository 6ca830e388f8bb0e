"""Cassettes: recording real model calls (the OpenAI adapter against the local wire server, or the
scripted model) and replaying them with no model; the file format and its errors."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai_wire import OpenAIWire, Reply
from pydantic import BaseModel, field_validator

from tactful.errors import ConfigurationError, ModelError
from tactful.llm.base import Prompt
from tactful.llm.cassette import (
    CASSETTE_VERSION,
    EXCERPT_CHARS,
    Cassette,
    RecordingGenerator,
    ReplayingGenerator,
    call_key,
    excerpt_of,
    with_cassette,
)
from tactful.llm.openai import OpenAIGenerator
from tactful.llm.scripted import ScriptedCall, ScriptedGenerator

SECRET = "internal-routing-note-7731"
PROMPT = Prompt(
    system=f"You decide. {SECRET}",
    user="Agent: Support\n\nConversation:\ncustomer: hi\nagent: hello\ncustomer: where is VM1?",
)
OTHER = Prompt(system=PROMPT.system, user="Conversation:\ncustomer: do you ship to Canada?")


class Answer(BaseModel):
    message: str


class Verdict(BaseModel):
    applies: bool


def scripted(*answers: dict[str, Any]) -> ScriptedGenerator:
    """Answers ``answers`` in turn, whatever the stage."""
    queue = list(answers)
    return ScriptedGenerator(default=lambda call: queue.pop(0), model_name="scripted-1")


def on_disk(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def permissions(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
async def openai_generator(openai_wire: OpenAIWire) -> AsyncIterator[OpenAIGenerator]:
    async with OpenAIGenerator(
        "gpt-wire", base_url=openai_wire.base_url, api_key="sk-test", max_retries=0
    ) as generator:
        yield generator


# -- round trips ----------------------------------------------------------------------------------


async def test_a_generate_call_round_trips_through_the_openai_adapter(
    openai_wire: OpenAIWire, openai_generator: OpenAIGenerator, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    openai_wire.script(
        Reply('{"message": "It ships Friday."}', prompt_tokens=90, completion_tokens=8)
    )
    recorder = RecordingGenerator(openai_generator, path)
    assert (recorder.provider, recorder.model_name) == ("openai", "gpt-wire")
    recorded = await recorder.generate(PROMPT, Answer, stage="compose")

    replayer = ReplayingGenerator(path)
    replayed = await replayer.generate(PROMPT, Answer, stage="compose")

    assert replayed.content == recorded.content == Answer(message="It ships Friday.")
    assert replayed.usage == recorded.usage
    assert replayed.usage.prompt_tokens == 90
    assert replayed.model == "gpt-wire"
    assert replayer.provider == "cassette" and replayer.model_name == "gpt-wire"
    assert json.loads(replayed.raw) == {"message": "It ships Friday."}
    assert replayed.latency_ms < recorded.latency_ms
    [interaction] = on_disk(path)["interactions"]
    assert interaction["answer"] == {"message": "It ships Friday."}
    assert interaction["provider"] == "openai"
    assert interaction["usage"] == {"prompt_tokens": 90, "cached_tokens": 0, "completion_tokens": 8}
    assert replayer.unused() == []


async def test_a_streamed_call_replays_its_pieces(
    openai_wire: OpenAIWire, openai_generator: OpenAIGenerator, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    openai_wire.script(Reply("Your order ships Friday.", prompt_tokens=40, completion_tokens=5))
    recorder = RecordingGenerator(openai_generator, path)
    assert recorder.supports_streaming
    seen: list[str] = []

    async def collect(piece: str) -> None:
        seen.append(piece)

    recorded = await recorder.stream(PROMPT, stage="compose", on_text=collect)
    assert seen == ["Your ", "order ", "ships ", "Friday."]

    replayer = ReplayingGenerator(path)
    assert replayer.supports_streaming
    again: list[str] = []

    async def collect_again(piece: str) -> None:
        again.append(piece)

    replayed = await replayer.stream(PROMPT, stage="compose", on_text=collect_again)
    assert again == seen
    assert replayed.text == recorded.text == "Your order ships Friday."
    assert (replayed.usage.prompt_tokens, replayed.usage.completion_tokens) == (40, 5)
    [interaction] = on_disk(path)["interactions"]
    assert interaction["kind"] == "stream" and "schema_name" not in interaction
    assert interaction["pieces"] == seen
    # A stream and a generate call are different calls, even with the same prompt.
    with pytest.raises(ModelError, match="no recording for the generate call"):
        await replayer.generate(PROMPT, Answer, stage="compose")


async def test_identical_calls_are_answered_in_recorded_order(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    recorder = RecordingGenerator(scripted({"message": "first"}, {"message": "second"}), path)
    await recorder.generate(PROMPT, Answer, stage="compose")
    await recorder.generate(PROMPT, Answer, stage="compose")

    replayer = ReplayingGenerator(path)
    first = await replayer.generate(PROMPT, Answer, stage="compose")
    assert len(replayer.unused()) == 1
    second = await replayer.generate(PROMPT, Answer, stage="compose")
    assert [first.content.message, second.content.message] == ["first", "second"]
    with pytest.raises(ModelError, match=r"recorded 2 time\(s\) and each recording was used"):
        await replayer.generate(PROMPT, Answer, stage="compose")


async def test_concurrent_calls_are_all_recorded(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    inner = ScriptedGenerator(
        default=lambda call: {"applies": "VM1" in call.prompt.user}, latency_s=0.01
    )
    recorder = RecordingGenerator(inner, path)
    await asyncio.gather(
        recorder.generate(PROMPT, Verdict, stage="match"),
        recorder.generate(OTHER, Verdict, stage="match"),
    )
    assert len(on_disk(path)["interactions"]) == 2
    replayer = ReplayingGenerator(path)
    # In the other order: each call finds its own answer by its key.
    other = await replayer.generate(OTHER, Verdict, stage="match")
    mine = await replayer.generate(PROMPT, Verdict, stage="match")
    assert (mine.content.applies, other.content.applies) == (True, False)


async def test_the_recorder_passes_the_timeout_and_mirrors_the_model(tmp_path: Path) -> None:
    inner = scripted({"message": "ok"})
    recorder = RecordingGenerator(inner, tmp_path / "c.json")
    await recorder.generate(PROMPT, Answer, stage="compose", timeout_s=2.5)
    assert [c.timeout_s for c in inner.calls] == [2.5]
    assert (recorder.model_name, recorder.provider) == ("scripted-1", "scripted")
    assert recorder.count_tokens("a b c") == inner.count_tokens("a b c")


# -- misses and changes ---------------------------------------------------------------------------


async def test_a_call_that_was_not_recorded_says_which_and_how_to_record(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    recorder = RecordingGenerator(
        scripted({"message": "ok"}), path, how_to_record="python record_it.py"
    )
    await recorder.generate(PROMPT, Answer, stage="compose")
    replayer = ReplayingGenerator(path)

    with pytest.raises(ModelError) as caught:
        await replayer.generate(OTHER, Answer, stage="compose")
    message = str(caught.value)
    assert "no recording for the generate call of stage 'compose' (Answer)" in message
    assert "'do you ship to Canada?'" in message
    assert "its prompt differs from the 1 unused recording(s)" in message
    assert "'where is VM1?'" in message  # the recording it could have been
    assert message.endswith("Re-record it: python record_it.py")

    with pytest.raises(ModelError, match=r"stage 'match' .*no unused recording of this stage"):
        await replayer.generate(PROMPT, Answer, stage="match")
    assert len(replayer.unused()) == 1


async def test_a_changed_schema_is_a_clear_model_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    await RecordingGenerator(scripted({"message": "ok"}), path).generate(
        PROMPT, Answer, stage="compose"
    )

    class Answer2(BaseModel):
        message: str
        tone: str

    Answer2.__name__ = "Answer"  # the same schema name, one more required field
    with pytest.raises(ModelError, match="the schema Answer changed since it was recorded"):
        await ReplayingGenerator(path).generate(PROMPT, Answer2, stage="compose")


async def test_a_recorded_answer_that_no_longer_validates_is_a_model_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.json"
    await RecordingGenerator(scripted({"message": "ok"}), path).generate(
        PROMPT, Answer, stage="compose"
    )

    class Stricter(BaseModel):
        message: str

        @field_validator("message")
        @classmethod
        def long_enough(cls, value: str) -> str:
            if len(value) < 5:
                raise ValueError("too short")
            return value

    # A validator is not part of the JSON schema: the call is found, its answer fails.
    Stricter.__name__ = "Answer"
    assert call_key("compose", "generate", Stricter, PROMPT) == call_key(
        "compose", "generate", Answer, PROMPT
    )
    with pytest.raises(ModelError, match=r"does not validate as Answer any more \(message: "):
        await ReplayingGenerator(path).generate(PROMPT, Stricter, stage="compose")


async def test_a_loose_replay_takes_the_next_recording_of_the_stage_and_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.json"
    await RecordingGenerator(scripted({"message": "ok"}), path).generate(
        PROMPT, Answer, stage="compose"
    )
    replayer = ReplayingGenerator(path, strict=False)
    answer = await replayer.generate(OTHER, Answer, stage="compose")
    assert answer.content.message == "ok"
    assert replayer.mismatches == [
        "the generate call of stage 'compose' (Answer) at 'do you ship to Canada?' was answered "
        "by the recording at 'where is VM1?' (its prompt differs)"
    ]
    assert replayer.unused() == []
    with pytest.raises(ModelError):
        await replayer.generate(OTHER, Answer, stage="compose")


def test_the_key_covers_every_part_of_the_call() -> None:
    key = call_key("compose", "generate", Answer, PROMPT)
    assert len(key) == 64 and key == call_key("compose", "generate", Answer, PROMPT)
    others = {
        call_key("match", "generate", Answer, PROMPT),
        call_key("compose", "stream", None, PROMPT),
        call_key("compose", "generate", Verdict, PROMPT),
        call_key("compose", "generate", Answer, Prompt(PROMPT.system + " ", PROMPT.user)),
        call_key("compose", "generate", Answer, Prompt(PROMPT.system, PROMPT.user + "!")),
    }
    assert key not in others and len(others) == 5


def test_the_excerpt_is_the_latest_customer_message() -> None:
    assert excerpt_of(PROMPT) == "where is VM1?"
    assert excerpt_of(Prompt("s", "no   conversation\nhere")) == "no conversation here"
    long = excerpt_of(Prompt("s", "customer: " + "x" * 500))
    assert len(long) == EXCERPT_CHARS and long.endswith("…")


# -- the file -------------------------------------------------------------------------------------


async def test_the_file_keeps_hashes_not_prompts(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    await RecordingGenerator(scripted({"message": "ok"}), path).generate(
        PROMPT, Answer, stage="compose"
    )
    text = path.read_text()
    assert SECRET not in text and "Agent: Support" not in text and "customer: hi" not in text
    data = json.loads(text)
    assert list(data) == [
        "version",
        "about",
        "how_to_record",
        "supports_streaming",
        "interactions",
    ]
    assert data["version"] == CASSETTE_VERSION and "transcript" in data["about"]
    assert text == Cassette.load(path).dumps()  # loading and saving changes nothing
    assert text.startswith('{\n  "version": 1,') and text.endswith("}\n")


async def test_the_file_is_complete_after_every_call(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    inner = scripted({"message": "one"}, {"message": "two"})
    recorder = RecordingGenerator(inner, path)
    assert not path.exists()  # nothing is written before a call is recorded
    await recorder.generate(PROMPT, Answer, stage="compose")
    assert len(Cassette.load(path).interactions) == 1
    await recorder.generate(OTHER, Answer, stage="compose")
    assert [i.answer for i in Cassette.load(path).interactions] == [
        {"message": "one"},
        {"message": "two"},
    ]
    # A failed call raises as usual and is not recorded.
    inner.default = lambda call: ModelError("provider down")
    with pytest.raises(ModelError, match="provider down"):
        await recorder.generate(PROMPT, Answer, stage="compose")
    assert len(Cassette.load(path).interactions) == 2
    assert files_in(tmp_path) == ["c.json"]
    assert permissions(path) == 0o644


async def test_a_crash_while_writing_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.json"
    recorder = RecordingGenerator(scripted({"message": "one"}, {"message": "two"}), path)
    await recorder.generate(PROMPT, Answer, stage="compose")
    before = path.read_text()

    def crash(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ConfigurationError, match=r"cannot write the cassette .*No space left"):
        await recorder.generate(OTHER, Answer, stage="compose")
    assert path.read_text() == before
    assert files_in(tmp_path) == ["c.json"]


async def test_recording_replaces_a_file_unless_appending(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    await RecordingGenerator(scripted({"message": "one"}), path).generate(
        PROMPT, Answer, stage="compose"
    )
    appending = RecordingGenerator(scripted({"message": "two"}), path, append=True)
    await appending.generate(OTHER, Answer, stage="compose")
    assert len(Cassette.load(path).interactions) == 2
    await RecordingGenerator(scripted({"message": "three"}), path).generate(
        PROMPT, Answer, stage="compose"
    )
    assert [i.answer for i in Cassette.load(path).interactions] == [{"message": "three"}]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", r"is not valid JSON"),
        ("[1, 2]", r"is not a tactful cassette"),
        ('{"interactions": []}', r"is not a tactful cassette"),
        (
            '{"version": 99, "interactions": [], "how_to_record": "make cassette"}',
            r"has version 99, but this tactful reads version 1: record it again \(make cassette\)",
        ),
        ('{"version": 1, "interactions": [{"stage": "compose"}]}', r"interactions\.0\.kind"),
        (
            '{"version": 1, "interactions": [{"stage": "m", "kind": "generate", '
            '"key": "' + "a" * 64 + '", "provider": "p", "model": "m"}]}',
            r"needs its schema_name and answer",
        ),
    ],
)
def test_a_broken_cassette_is_a_configuration_error(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=problem):
        ReplayingGenerator(path)


def test_a_missing_cassette_says_how_to_record_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"there is no cassette at .*nope\.json: record"):
        ReplayingGenerator(tmp_path / "nope.json")


# -- settings -------------------------------------------------------------------------------------


async def test_with_cassette_records_or_replays(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    inner = scripted({"message": "ok"})
    recorder = with_cassette(inner, path, "record")
    assert isinstance(recorder, RecordingGenerator) and recorder.inner is inner
    await recorder.generate(PROMPT, Answer, stage="compose")
    # A replay needs no model at all.
    replayer = with_cassette(None, path, "replay")
    assert isinstance(replayer, ReplayingGenerator)
    assert (await replayer.generate(PROMPT, Answer, stage="compose")).content.message == "ok"
    assert len(inner.calls) == 1


def test_with_cassette_refuses_what_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="needs a model to record: set TACTFUL_OPENAI"):
        with_cassette(None, tmp_path / "c.json", "record")
    with pytest.raises(ConfigurationError, match="unknown cassette mode 'rewind'"):
        with_cassette(scripted(), tmp_path / "c.json", "rewind")  # type: ignore[arg-type]


async def test_a_replay_mirrors_whether_the_recorded_model_streamed(tmp_path: Path) -> None:
    path = tmp_path / "c.json"

    class BlockOnly(ScriptedGenerator):
        supports_streaming = False

    def answer(call: ScriptedCall) -> dict[str, Any]:
        return {"message": "ok"}

    await RecordingGenerator(BlockOnly(default=answer), path).generate(
        PROMPT, Answer, stage="compose"
    )
    assert on_disk(path)["supports_streaming"] is False
    assert ReplayingGenerator(path).supports_streaming is False
