"""Lexical scoring of guidelines: BM25 over conditions and example utterances.

Dense similarity misses exact words that matter (a product name, "PayPal", "Canada") and
lexical overlap misses paraphrases; the retriever fuses both. The index is built lazily for a
set of guidelines and cached by a content hash of that set, so an unchanged set is indexed once
per process.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import snowballstemmer  # type: ignore[import-untyped]

from tactful.domain import Guideline

# Function words and the words every condition shares ("the customer asks…"), which carry no
# topic.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t don doesn didn isn wasn won can't cannot also get got im ive id youre its please hi
    hello hey thanks thank ok okay yes yeah would like want wants need needs say says said
    customer customers agent ask asks asked tell tells one
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_ENGLISH = snowballstemmer.stemmer("english")
# A Snowball stemmer keeps its word in itself while it works: one caller at a time.
_ENGLISH_LOCK = threading.Lock()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem, cut to five letters (prefix stemming).

    Snowball joins inflections ("ordered" and "order", "refunding" and "refunds"); the cut joins
    derivations it keeps apart ("referral" and "refer", "delivery" and "deliver").
    """
    with _ENGLISH_LOCK:
        return str(_ENGLISH.stemWord(word))[:5]


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words dropped, stemmed terms."""
    words = (w.split("'")[0] for w in _WORD.findall(text.lower()))
    return [stem(w) for w in words if w not in STOPWORDS and len(w) > 1]


class LexicalIndex:
    """BM25 over one document per guideline: its condition and its example utterances."""

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.size = len(documents)
        counts = [Counter(tokenize(d)) for d in documents]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float32)
        average = float(lengths.mean()) if self.size and lengths.sum() else 1.0
        # Per document, the length part of BM25's denominator.
        self._norm = k1 * (1.0 - b + b * lengths / average)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, c in enumerate(counts):
            for term, tf in c.items():
                docs, tfs = postings.setdefault(term, ([], []))
                docs.append(i)
                tfs.append(tf)
        self._postings = {
            term: (np.array(docs, dtype=np.intp), np.array(tfs, dtype=np.float32))
            for term, (docs, tfs) in postings.items()
        }
        self._idf = {
            term: math.log(1.0 + (self.size - len(docs) + 0.5) / (len(docs) + 0.5))
            for term, (docs, _) in postings.items()
        }

    def __len__(self) -> int:
        return self.size

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """BM25 of every document for one query (each distinct query term counted once)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in dict.fromkeys(tokenize(query)):
            posting = self._postings.get(term)
            if posting is None:
                continue
            docs, tfs = posting
            out[docs] += self._idf[term] * tfs * (self.k1 + 1.0) / (tfs + self._norm[docs])
        return out


def guideline_document(g: Guideline) -> str:
    return "\n".join([g.condition, *g.examples])


class LexicalIndexCache:
    """Indexes built lazily per guideline set, keyed by content, least recently used dropped."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._indexes: OrderedDict[tuple[tuple[str, ...], ...], LexicalIndex] = OrderedDict()
        self.builds = 0
        # The last tuple indexed (a snapshot's guidelines, ranked every turn): no key to build.
        self._last: tuple[Sequence[Guideline], LexicalIndex] | None = None

    def index(self, guidelines: Sequence[Guideline]) -> LexicalIndex:
        if self._last is not None and self._last[0] is guidelines:
            return self._last[1]
        found = self._index(guidelines)
        if isinstance(guidelines, tuple):
            self._last = (guidelines, found)
        return found

    def _index(self, guidelines: Sequence[Guideline]) -> LexicalIndex:
        # The documents themselves are the key (cheap to hash: strings cache their hashes).
        key = tuple((g.condition, *g.examples) for g in guidelines)
        found = self._indexes.get(key)
        if found is not None:
            self._indexes.move_to_end(key)
            return found
        built = LexicalIndex([guideline_document(g) for g in guidelines])
        self.builds += 1
        self._indexes[key] = built
        while len(self._indexes) > self.size:
            self._indexes.popitem(last=False)
        return built
