"""The MiniLM encoder's layers on ONNX Runtime: the same weights, faster on a turn's texts.

``tactful.llm.minilm`` runs all-MiniLM-L6-v2 in NumPy; for a turn's few short texts NumPy's
OpenBLAS spends most of the encoder's time in matrix products with a dozen rows, where it
reaches a third of this CPU's speed. ONNX Runtime's kernels do better on such shapes, and run
the whole encoder in one call. This module builds the six encoder layers as an ONNX graph from
the weights ``minilm`` already loaded (nothing is downloaded, nothing is written to disk) and
runs it; the token embeddings before the layers and the pooling after them stay in NumPy, so
both runtimes share them. The vectors agree with NumPy's to about 1e-7 (tests/llm).

It needs the ``onnx`` extra (``pip install 'tactful[onnx]'``: onnxruntime and onnx, about 110
MB installed). ``runtime="auto"``, the default, uses it when it is installed, else NumPy.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tactful.errors import ConfigurationError

__all__ = ["LAYER_WEIGHTS", "ONNX_HINT", "OnnxLayers", "Runtime", "resolve_runtime"]

Runtime = Literal["auto", "onnx", "numpy"]
ONNX_HINT = "pip install 'tactful[onnx]'"

F32 = npt.NDArray[np.float32]

# A run packs consecutive texts into one sequence whose attention is masked block by block
# (each text attends to itself only), so the products see every text's tokens at once. The
# masked scores grow with the square of the run: past this many tokens a new run starts.
RUN_TOKENS = 256
_MASKED = np.float32(-1e9)


def onnx_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_runtime(runtime: str) -> Literal["onnx", "numpy"]:
    """The runtime ``runtime`` names: ``auto`` is ONNX Runtime when installed, else NumPy.

    Raises ``ConfigurationError`` for an unknown name, or ``onnx`` when it is not installed.
    """
    if runtime == "numpy":
        return "numpy"
    if runtime not in ("auto", "onnx"):
        raise ConfigurationError(f"unknown embedder runtime {runtime!r}: use auto, onnx or numpy")
    if onnx_installed():
        return "onnx"
    if runtime == "onnx":
        raise ConfigurationError(
            "The embedder runtime 'onnx' needs onnxruntime and onnx; install them with "
            f"`{ONNX_HINT}`, or set TACTFUL_EMBEDDER_RUNTIME=numpy."
        )
    return "numpy"


class OnnxLayers:
    """The encoder layers as one ONNX Runtime session: ``(tokens, hidden)`` in, out."""

    def __init__(
        self, layers: Sequence[object], *, hidden: int, heads: int, eps: float, threads: int = 1
    ) -> None:
        """``layers``: each layer's weights as attributes named as in ``LAYER_WEIGHTS`` (the
        model's ``_Layer``), float32 arrays the session reads in place: keep them alive."""
        import onnxruntime as ort

        model, weights = _graph(layers, hidden=hidden, heads=heads, eps=eps)
        options = ort.SessionOptions()
        # The weights stay NumPy's arrays: ONNX Runtime reads them where they are, not copies
        # of them in the graph (which would hold the 42 MB twice more).
        self._weights = [ort.OrtValue.ortvalue_from_numpy(w) for w in weights.values()]
        options.add_external_initializers(list(weights), self._weights)
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle threads sleep rather than spin: a spinning thread costs a CPU the event loop
        # may need, as OpenBLAS's did (docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def run(self, x: F32, lengths: Sequence[int]) -> F32:
        """The layers over packed tokens ``x`` (texts of ``lengths``, one after the other)."""
        out = np.empty_like(x)
        for start, stop, sizes in _runs(lengths):
            owner = np.repeat(np.arange(len(sizes)), sizes)
            bias = np.where(owner[:, None] == owner[None, :], np.float32(0.0), _MASKED)
            feed = {"x": x[None, start:stop], "bias": bias.astype(np.float32)[None, None]}
            out[start:stop] = self._session.run(None, feed)[0][0]
        return out


def _runs(lengths: Sequence[int]) -> list[tuple[int, int, list[int]]]:
    """Consecutive texts in runs of at most ``RUN_TOKENS`` tokens (a longer text alone):
    ``(first row, stop row, lengths)`` each."""
    runs: list[tuple[int, int, list[int]]] = []
    start = 0
    sizes: list[int] = []
    for n in lengths:
        if sizes and sum(sizes) + n > RUN_TOKENS:
            runs.append((start, start + sum(sizes), sizes))
            start, sizes = start + sum(sizes), []
        sizes.append(n)
    if sizes:
        runs.append((start, start + sum(sizes), sizes))
    return runs


def _graph(
    layers: Sequence[object], *, hidden: int, heads: int, eps: float
) -> tuple[Any, dict[str, F32]]:
    """BERT's encoder layers as an ONNX model (opset 17), and the layers' weights by name.

    The weights are initializers marked external, without data: the session is given the
    arrays themselves (``add_external_initializers``). Inputs: ``x`` (1, tokens, hidden) and
    ``bias`` (1, 1, tokens, tokens), added to the attention scores (0 where a token may
    attend, -1e9 elsewhere); output ``y`` like ``x``.
    """
    from onnx import TensorProto, helper, numpy_helper

    head_dim = hidden // heads
    nodes: list[Any] = []
    weights: list[Any] = []
    external: dict[str, F32] = {}

    def const(name: str, value: npt.NDArray[Any]) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(name: str, value: F32) -> str:
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=value.shape)
        # Marked external (a location is required), given to the session, never read.
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="numpy")
        weights.append(tensor)
        external[name] = value
        return name

    def op(kind: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    split_heads = const("split_heads", np.array([0, 0, 3, heads, head_dim], dtype=np.int64))
    join_heads = const("join_heads", np.array([0, 0, hidden], dtype=np.int64))
    first = const("first_axis", np.array([0], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    one = const("one", np.array(1.0, dtype=np.float32))
    root_half = const("root_half", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))

    x = "x"
    for i, layer in enumerate(layers):
        p = f"layer{i}."
        w = {name: weight(p + name, getattr(layer, name)) for name in LAYER_WEIGHTS}
        qkv = op("Add", [op("MatMul", [x, w["qkv_w"]], p + "qkv0"), w["qkv_b"]], p + "qkv")
        # (1, T, 3 * hidden) -> (3, 1, heads, T, head_dim): query, key and value.
        split = op("Reshape", [qkv, split_heads], p + "split")
        qkv5 = op("Transpose", [split], p + "qkv5", perm=[2, 0, 3, 1, 4])
        parts = [p + "q3", p + "k3", p + "v3"]
        nodes.append(helper.make_node("Split", [qkv5], parts, axis=0))
        q, k, v = (op("Squeeze", [part, first], part[:-1]) for part in parts)
        keys = op("Transpose", [k], p + "keys", perm=[0, 1, 3, 2])
        scores = op("Mul", [op("MatMul", [q, keys], p + "s0"), scale], p + "s1")
        weights_ = op("Softmax", [op("Add", [scores, "bias"], p + "s2")], p + "soft", axis=-1)
        ctx = op("MatMul", [weights_, v], p + "ctx0")
        ctx = op("Transpose", [ctx], p + "ctx1", perm=[0, 2, 1, 3])
        ctx = op("Reshape", [ctx, join_heads], p + "ctx")
        attn = op("MatMul", [ctx, w["attn_out_w"]], p + "a0")
        attn = op("Add", [op("Add", [attn, w["attn_out_b"]], p + "a1"), x], p + "a2")
        x = op("LayerNormalization", [attn, w["attn_ln_w"], w["attn_ln_b"]], p + "x1", epsilon=eps)
        inter = op("Add", [op("MatMul", [x, w["inter_w"]], p + "h0"), w["inter_b"]], p + "h1")
        # Exact GELU, as HF BERT's "gelu": x * 0.5 * (1 + erf(x / sqrt 2)).
        erf = op("Erf", [op("Mul", [inter, root_half], p + "e0")], p + "e1")
        gate = op("Mul", [op("Add", [erf, one], p + "e2"), half], p + "e3")
        gelu = op("Mul", [inter, gate], p + "gelu")
        out = op("MatMul", [gelu, w["out_w"]], p + "o0")
        out = op("Add", [op("Add", [out, w["out_b"]], p + "o1"), x], p + "o2")
        x = op("LayerNormalization", [out, w["out_ln_w"], w["out_ln_b"]], p + "x2", epsilon=eps)
    nodes.append(helper.make_node("Identity", [x], ["y"]))

    tokens = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", hidden])
    mask = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1, 1, "T", "T"])
    out_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", hidden])
    graph = helper.make_graph(nodes, "minilm_layers", [tokens, mask], [out_info], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, external


LAYER_WEIGHTS = (
    "qkv_w",
    "qkv_b",
    "attn_out_w",
    "attn_out_b",
    "attn_ln_w",
    "attn_ln_b",
    "inter_w",
    "inter_b",
    "out_w",
    "out_b",
    "out_ln_w",
    "out_ln_b",
)
