"""The offline embedder's encoder on ONNX Runtime (``tactful.llm.minilm_onnx``): the vectors
NumPy gives (and sentence-transformers' reference), whatever runs the texts are packed in; the
runtime chosen by name, by what is installed, and said when it is missing."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tactful.config import Settings
from tactful.errors import ConfigurationError
from tactful.llm import minilm_onnx
from tactful.llm.minilm import MiniLMEmbedder
from tactful.llm.minilm_onnx import RUN_TOKENS, _runs, resolve_runtime
from tactful.runtime import default_embedder

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (the onnx extra)")

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"

TEXTS = [
    "Hi, my parcel VM12345678 still has not arrived. It was due on Monday. Can you help?",
    "Hi, my parcel VM12345678 still has not arrived.",
    "It was due on Monday.",
    "",
    "ok",
    "the customer asks about a refund",
    "The customer wants to change the delivery address of an order that was already shipped.",
    "my parcel is late and nobody answers my emails about it " * 30,
]


@pytest.fixture(scope="module")
def onnx() -> MiniLMEmbedder:
    return MiniLMEmbedder(runtime="onnx", threads=2)


@pytest.fixture(scope="module")
def numpy_embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(runtime="numpy")


@pytest.mark.embedder
def test_onnx_vectors_are_numpys(onnx: MiniLMEmbedder, numpy_embedder: MiniLMEmbedder) -> None:
    got = onnx.embed_sync(TEXTS)
    assert onnx._model is not None and onnx._model.onnx is not None  # really ONNX Runtime
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert float(np.abs(got - numpy_embedder.embed_sync(TEXTS)).max()) < 1e-5


@pytest.mark.embedder
def test_onnx_matches_sentence_transformers_reference(onnx: MiniLMEmbedder) -> None:
    reference = json.loads(REFERENCE.read_text("utf-8"))
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    assert float(np.abs(onnx.embed_sync(reference["sentences"]) - expected).max()) < 1e-4


@pytest.mark.embedder
def test_texts_split_over_several_runs_equal_each_text_alone(onnx: MiniLMEmbedder) -> None:
    # 40 texts of 15 tokens: runs of packed, block-masked attention.
    texts = [
        f"order number {i} arrived late, and the box number {i * 7} was crushed" for i in range(40)
    ]
    model = onnx._loaded()
    lengths = [len(ids) for ids in model.tokenize(texts)]
    # The first batch of 32 (480 tokens) is more than one run.
    assert sum(lengths[:32]) > RUN_TOKENS
    together = onnx.embed_sync(texts)
    alone = np.vstack([onnx.embed_sync([t]) for t in texts])
    assert float(np.abs(together - alone).max()) < 1e-5
    # Each text attends to itself only: a neighbour in its run does not move its vector.
    assert np.all((together @ together.T)[~np.eye(len(texts), dtype=bool)] < 0.9999)


def test_runs_cover_every_row_in_order_and_stay_under_the_limit() -> None:
    lengths = [300, 200, 40, 30, 250, 5, 5, 256]
    runs = _runs(lengths)
    assert [sizes for _, _, sizes in runs] == [[300], [200, 40], [30], [250, 5], [5], [256]]
    assert runs[0][0] == 0 and runs[-1][1] == sum(lengths)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))
    assert all(sum(s) <= RUN_TOKENS or len(s) == 1 for _, _, s in runs)
    assert all(stop - start == sum(sizes) for start, stop, sizes in runs)


def test_runtime_by_name_and_by_what_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_runtime("auto") == "onnx" and resolve_runtime("onnx") == "onnx"
    assert resolve_runtime("numpy") == "numpy"
    monkeypatch.setattr(minilm_onnx, "onnx_installed", lambda: False)
    assert resolve_runtime("auto") == "numpy"
    with pytest.raises(ConfigurationError, match=r"tactful\[onnx\]"):
        resolve_runtime("onnx")
    with pytest.raises(ConfigurationError, match="auto, onnx or numpy"):
        resolve_runtime("torch")


def test_settings_choose_the_runtime_and_the_server_says_which(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TACTFUL_EMBEDDER_RUNTIME", "numpy")
    monkeypatch.setenv("TACTFUL_EMBEDDER_THREADS", "3")
    embedder = default_embedder(Settings())
    assert isinstance(embedder, MiniLMEmbedder)
    assert (embedder.runtime, embedder.threads, embedder.process) == ("numpy", 3, True)
    assert "NumPy" in embedder.describe() and "tactful[onnx]" in embedder.describe()
    monkeypatch.setenv("TACTFUL_EMBEDDER_RUNTIME", "auto")
    chosen = default_embedder(Settings())
    assert isinstance(chosen, MiniLMEmbedder) and chosen.runtime == "onnx"
    assert "ONNX Runtime, 3 threads" in chosen.describe()
    monkeypatch.setenv("TACTFUL_EMBEDDER_THREADS", "0")
    with pytest.raises(ValueError, match="embedder_threads"):
        Settings()


@pytest.mark.embedder
async def test_onnx_in_its_own_process_gives_this_processes_vectors_bit_for_bit() -> None:
    here = MiniLMEmbedder(runtime="onnx", threads=2)
    there = MiniLMEmbedder(runtime="onnx", threads=2, process=True)
    got = await there.embed(TEXTS)
    assert np.array_equal(got, here.embed_sync(TEXTS))
    assert there._model is None  # computed in the child
    assert there._child().runtime == "onnx"


def test_the_graph_takes_every_weight_of_a_layer() -> None:
    from dataclasses import fields

    from tactful.llm.minilm import _Layer
    from tactful.llm.minilm_onnx import LAYER_WEIGHTS

    assert tuple(f.name for f in fields(_Layer)) == LAYER_WEIGHTS
