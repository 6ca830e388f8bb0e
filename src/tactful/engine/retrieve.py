"""Stage 3, retrieve: rank guideline conditions against the situation (no model call).

Retrieval ranks; matching decides. The ranking is hybrid:

* dense similarity between the situation (each of the latest customer messages, their
  sentences, the recent window, and the customer's earlier questions, which a message may take
  up again without repeating them) and several views of each guideline: its condition, the
  condition rewritten in the customer's voice ("The customer wants to cancel…" → "I want to
  cancel…"), its core clause without the "The customer asks whether" frame and trailing
  qualifiers, and the example utterances its author gave;
* lexical BM25 over the condition and the examples (``engine/lexical.py``);
* fused by reciprocal rank (RRF) within each message, which needs no calibration between
  cosine and BM25 scales and so survives a change of embedder; a guideline keeps its best
  weighted message, so a clear match for the latest message is not buried under the many
  near matches of an earlier, wordier one.

Embeddings come from ``engine/embeddings.py``'s cache (a definition's kept in memory and in the
store, so a restart with unchanged guidelines embeds nothing; a conversation text's in memory
only). The lexical index is built lazily per guideline set. The measured effect is in
docs/matching.md.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import repeat
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from tactful.domain import Guideline
from tactful.engine.context import TurnContext
from tactful.engine.embeddings import EmbeddingCache
from tactful.engine.lexical import LexicalIndexCache
from tactful.llm.base import Vectors

F32 = npt.NDArray[np.float32]


class Ranked(NamedTuple):
    """A guideline's retrieval score (for ranking) and its focus on the latest message.

    ``score`` is the ranking score: the list from ``Retriever.rank`` is sorted by it. It weighs
    earlier customer messages almost like the latest one (the window less), so that open
    requests stay candidates. With hybrid ranking it is the best, over the messages, of each
    message's weighted reciprocal-rank fusion of its dense and lexical rankings, normalised
    (1.0 = first in both for the latest message); with ``hybrid=False`` it is the dense similarity.
    ``focus`` is the similarity of the condition (or an example utterance) to the latest
    message only, so that a decision made on similarity alone (the offline tier) answers
    that message, not the previous one again. ``similarity`` and ``lexical`` are the two fused
    signals, kept for traces and benchmarks. (A named tuple: a ranking makes one per
    guideline on every turn, a thousand of them at a time, built in C.)
    """

    guideline: Guideline
    score: float
    focus: float = 0.0
    similarity: float = 0.0
    lexical: float = 0.0

    @staticmethod
    def many(
        guidelines: Sequence[Guideline],
        order: Sequence[int],
        score: Sequence[float],
        focus: Sequence[float],
        similarity: Sequence[float],
        lexical: Sequence[float] | None = None,
    ) -> list[Ranked]:
        """``Ranked(guidelines[i], score[i], focus[i], similarity[i], lexical[i])`` for each
        ``i`` of ``order`` (``lexical`` None: 0.0), without a call in Python per guideline."""
        columns: list[Iterator[object]] = [
            map(values.__getitem__, order) for values in (guidelines, score, focus, similarity)
        ]
        columns.append(repeat(0.0) if lexical is None else map(lexical.__getitem__, order))
        # ``tuple.__new__``: the named tuple's own constructor, without its call in Python. Not
        # strict: ``repeat`` has no end; the others have ``order``'s length.
        return list(map(tuple.__new__, repeat(Ranked), zip(*columns, strict=False)))


class Ranking(list[Ranked]):
    """``Retriever.rank``'s list (best first), with what candidate selection would otherwise
    look up in each of its guidelines: their ids in this order, the set of them, and whether
    it is ``plain`` (each guideline once, all enabled, none always-matched). At 1,000
    guidelines, reading those from every guideline cost a turn about a millisecond."""

    __slots__ = ("ids", "members", "plain")

    def __init__(
        self,
        ranked: list[Ranked],
        ids: list[str],
        members: frozenset[str],
        *,
        plain: bool,
    ) -> None:
        super().__init__(ranked)
        self.ids = ids
        self.members = members
        self.plain = plain

    def without(self, hidden: AbstractSet[str]) -> Ranking:
        """The ranking without the guidelines of ``hidden`` ids, in the same order."""
        keep = [i for i, gid in enumerate(self.ids) if gid not in hidden]
        return Ranking(
            [self[i] for i in keep],
            [self.ids[i] for i in keep],
            self.members - hidden,
            plain=self.plain,
        )


def guideline_text(g: Guideline) -> str:
    return g.condition


# --- views of a condition -------------------------------------------------------------------

_THIRD_PERSON = {
    "is": "am",
    "has": "have",
    "does": "do",
    "was": "was",
    "says": "say",
    "goes": "go",
}
_CUSTOMER = r"(?:the|a|an) (?:customer|user|shopper|client|buyer)"
_VERBS = (
    r"asks|wants|says|needs|mentions|reports|complains|objects|requests|claims|tries|"
    r"describes|expresses|thinks|believes|insists|demands|threatens"
)


def _first_person_verb(verb: str) -> str:
    low = verb.lower()
    if low in _THIRD_PERSON:
        return _THIRD_PERSON[low]
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes")):
        return low[:-2]
    if low.endswith("s") and not low.endswith(("ss", "us", "is")):
        return low[:-1]
    return low


def first_person(condition: str) -> str:
    """The condition in the customer's voice: what a customer would say, roughly.

    Conditions are written about the customer ("The customer says their card was declined");
    customers write in the first person ("my card was declined"). Closing that gap in register
    helps a general-purpose sentence embedder. Deterministic and approximate by design.
    """
    s = re.sub(rf"\b{_CUSTOMER}'s\b", "my", condition, flags=re.IGNORECASE)
    # "A premium member asks…" -> "I am a premium member and I ask…"
    s = re.sub(
        r"^(?:a|an) ([\w-]+ (?:customer|member|user|shopper|client|buyer)) ([a-z]+s)\b",
        lambda m: f"I am a {m.group(1)} and I {_first_person_verb(m.group(2))}",
        s,
        flags=re.IGNORECASE,
    )
    # "A customer who is not a premium member asks…" -> "I am not a premium member and I ask…"
    s = re.sub(
        rf"\b{_CUSTOMER} (?:who|that) (is|has|was|does) ([^,;]*?) ({_VERBS})\b",
        lambda m: (
            f"I {_first_person_verb(m.group(1))} {m.group(2)} and I "
            + _first_person_verb(m.group(3))
        ),
        s,
        flags=re.IGNORECASE,
    )
    s = re.sub(
        rf"\b{_CUSTOMER} (?:who|that) (is|has|was|does)\b",
        lambda m: "I " + _first_person_verb(m.group(1)),
        s,
        flags=re.IGNORECASE,
    )
    s = re.sub(
        rf"\b{_CUSTOMER}( (?:only|still|already|just|also|never|now))? ([a-z]+)\b",
        lambda m: "I" + (m.group(1) or "") + " " + _first_person_verb(m.group(2)),
        s,
        flags=re.IGNORECASE,
    )
    s = re.sub(r"\bthe (?:agent|assistant)'s\b", "your", s, flags=re.IGNORECASE)
    s = re.sub(r"\bthe (?:agent|assistant) (has|is|was)\b", r"you \1", s, flags=re.IGNORECASE)
    s = re.sub(r"\bthe (?:agent|assistant)\b", "you", s, flags=re.IGNORECASE)
    s = re.sub(r"\byou has\b", "you have", s)
    s = re.sub(r"\byou is\b", "you are", s)
    s = re.sub(r"\byou was\b", "you were", s)
    for pattern, replacement in (
        (r"\bthey are\b", "I am"),
        (r"\bthey were\b", "I was"),
        (r"\bthey're\b", "I'm"),
        (r"\bthey\b", "I"),
        (r"\bthemselves\b", "myself"),
        (r"\bthem\b", "me"),
        (r"\btheirs\b", "mine"),
        (r"\btheir\b", "my"),
    ):
        s = re.sub(pattern, replacement, s)
    s = re.sub(r"\bI say (?:that )?I\b", "I", s)
    return s[:1].upper() + s[1:]


_FRAME = re.compile(
    rf"^\s*(?:{_CUSTOMER}|(?:a|an) [\w-]+ (?:customer|member|user))"
    r"(?: who is (?:not )?a [\w-]+ member)?"
    r" (?:says|asks|wants|mentions|indicates|reports|thinks|believes|claims|needs|"
    r"would like|is asking|requests)"
    r"(?: (?:that|whether|about|for|to|if)(?! or\b))?\s+",
    re.IGNORECASE,
)
_QUALIFIER = re.compile(
    r",\s*(?:and|but|or|such as|for example|e\.g\.|while|because|unless|without)\b"
    r"|\s+and (?:nothing|the customer|has|have|does|did|is|was)\b|\s+but\s|\s*\(",
    re.IGNORECASE,
)


def core(condition: str) -> str:
    """The condition's main clause: without the "The customer asks whether" frame and without
    trailing qualifiers ("…, and has given an order number", "(not on a specific order)")."""
    s = _QUALIFIER.split(condition, maxsplit=1)[0]
    return _FRAME.sub("", s).strip() or condition


@lru_cache(maxsize=16384)
def _views(condition: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([condition, first_person(condition), core(condition)]))


def condition_views(g: Guideline) -> list[str]:
    """The texts that stand for a guideline in dense retrieval (condition first, no repeats).

    Memoized by content: computed once per condition per process."""
    return list(_views(g.condition))


# --- views of the situation -----------------------------------------------------------------

_SENTENCE = re.compile(
    r"(?<=[.!?])\s+|\n+|;\s*|\s+(?:also|and also|oh and|plus|btw|by the way|another thing)\b,?\s*",
    re.IGNORECASE,
)


def sentences(text: str, *, min_words: int = 3) -> list[str]:
    """The sentences of a message, when it has more than one (several requests in one message
    dilute a single embedding)."""
    parts = [p.strip() for p in _SENTENCE.split(text) if p and p.strip()]
    parts = [p for p in parts if len(p.split()) >= min_words]
    return parts if len(parts) > 1 else []


def _ranks(values: F32) -> npt.NDArray[np.float64]:
    """1-based ordinal ranks, highest value first (stable for ties)."""
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks


@dataclass(frozen=True)
class _Layout:
    """What ranking needs of a guideline set that does not depend on the conversation: the
    texts to embed and, for each, the row of the guideline it stands for. Built once per set."""

    conditions: tuple[str, ...]
    # The condition and the examples, each guideline's consecutive.
    own_rows: npt.NDArray[np.intp]
    own: tuple[str, ...]
    view_rows: npt.NDArray[np.intp]
    views: tuple[str, ...]

    @staticmethod
    def of(guidelines: Sequence[Guideline]) -> _Layout:
        own = [(i, t) for i, g in enumerate(guidelines) for t in (g.condition, *g.examples)]
        views = [(i, v) for i, g in enumerate(guidelines) for v in condition_views(g)[1:]]
        return _Layout(
            conditions=tuple(guideline_text(g) for g in guidelines),
            own_rows=np.array([i for i, _ in own], dtype=np.intp),
            own=tuple(t for _, t in own),
            view_rows=np.array([i for i, _ in views], dtype=np.intp),
            views=tuple(v for _, v in views),
        )


class _Rows:
    """Embedded rows grouped by guideline (a guideline's rows are consecutive), and the best
    similarity of each guideline's rows to each query: one matrix product, no scatter.

    The rows are kept transposed, a contiguous row per dimension, so that queries that use few
    dimensions (a hashed-words embedder's: a dozen of 1,536) read only those: the product is
    then over the dimensions they use, not over the whole matrix, which at 1,000 guidelines is
    larger than the cache. Dense queries (MiniLM's) use every dimension in one product.
    """

    # Queries using at most this share of the dimensions read only theirs.
    SPARSE = 0.25

    def __init__(self, matrix: Vectors, rows: npt.NDArray[np.intp], count: int) -> None:
        self.columns: F32 = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32).T)
        self.count = count
        # Where each guideline's rows start, for the guidelines that have rows.
        self.owners, self.starts = np.unique(rows, return_index=True)
        self.every = len(self.owners) == count == len(rows)

    def best(self, queries: Vectors) -> F32:
        """(guidelines, queries): the best row of each guideline (-inf where it has none)."""
        used = np.flatnonzero(queries.any(axis=0))
        sims: F32
        if len(used) <= self.SPARSE * queries.shape[1]:
            sims = queries[:, used] @ self.columns[used]
        else:
            sims = queries @ self.columns
        # sims is (queries, rows): reduced along its contiguous axis, returned transposed.
        if self.every:
            return sims.T  # one row per guideline, in order
        out = np.full((len(queries), self.count), -np.inf, dtype=np.float32)
        if len(self.starts):
            out[:, self.owners] = np.maximum.reduceat(sims, self.starts, axis=1)
        return out.T


@dataclass(frozen=True)
class _Members:
    """A guideline sequence's ids, as ``Ranking`` carries them."""

    ids: tuple[str, ...]
    members: frozenset[str]
    plain: bool

    @staticmethod
    def of(guidelines: Sequence[Guideline]) -> _Members:
        ids = tuple(g.id for g in guidelines)
        members = frozenset(ids)
        plain = len(members) == len(ids) and all(g.enabled and not g.always for g in guidelines)
        return _Members(ids, members, plain)


@dataclass(frozen=True)
class _Prepared:
    """A guideline set's layout with its embedded rows, kept while the set is ranked again;
    and the ids of the sequence it was last found for (``members``)."""

    guidelines: Sequence[Guideline]
    layout: _Layout
    own: _Rows
    views: _Rows
    members: _Members

    @staticmethod
    async def of(guidelines: Sequence[Guideline], cache: EmbeddingCache) -> _Prepared:
        layout = _Layout.of(guidelines)
        count = len(layout.conditions)
        own = _Rows(await cache.embed(layout.own), layout.own_rows, count)
        views = _Rows(await cache.embed(layout.views), layout.view_rows, count)
        return _Prepared(guidelines, layout, own, views, _Members.of(guidelines))

    def found_for(self, guidelines: Sequence[Guideline]) -> _Prepared:
        """The same layout and rows for another sequence of the same conditions (its
        guidelines may differ in anything else: ids, flags)."""
        if guidelines is self.guidelines:
            return self
        return replace(self, guidelines=guidelines, members=_Members.of(guidelines))

    def ranking(self, order: list[int], ranked: list[Ranked]) -> Ranking:
        """``ranked`` (the guidelines in ``order``) as a ``Ranking``."""
        m = self.members
        return Ranking(ranked, list(map(m.ids.__getitem__, order)), m.members, plain=m.plain)


class Retriever:
    """Scores every guideline against the latest customer messages and the recent window.

    ``hybrid=False`` gives the dense-only ranking of conditions (and examples) against the
    messages and the window, as before the hybrid ranking; ``lexical_weight=0`` keeps the extra
    dense views but drops BM25.
    """

    RANK_EARLIER = 0.9
    # The customer's earlier questions, before the latest three messages: they may be taken up
    # again without being repeated (context.earlier_customer_questions).
    RANK_QUESTIONS = 0.8
    FOCUS_EARLIER = 0.0
    # Reciprocal-rank fusion constant (the usual 60) and the weight of the lexical ranking
    # (measured on the labeled set, a plateau from 0.2 to 0.3: docs/matching.md).
    RRF_K = 60.0
    LEXICAL_WEIGHT = 0.25
    # The recent window (the agent's replies included) ranks as one more group, weakly: it
    # carries what a short follow-up refers to.
    RANK_WINDOW = 0.5

    def __init__(
        self,
        cache: EmbeddingCache,
        *,
        hybrid: bool = True,
        lexical_weight: float | None = None,
        lexical: LexicalIndexCache | None = None,
    ) -> None:
        self.cache = cache
        self.hybrid = hybrid
        self.lexical_weight = self.LEXICAL_WEIGHT if lexical_weight is None else lexical_weight
        self.lexical = lexical or LexicalIndexCache()
        self._layouts: OrderedDict[tuple[tuple[str, ...], ...], _Prepared] = OrderedDict()
        # The same sequence object ranked again (a snapshot's guidelines): found by identity,
        # without a key over every condition. Each entry holds its sequence, so ids stay unique.
        self._by_identity: OrderedDict[int, _Prepared] = OrderedDict()

    async def window(self, ctx: TurnContext) -> Vectors:
        """The recent window as one (1, d) vector: the mean of its messages' embeddings.

        Each message is embedded once, by content (the agent's replies right after they are
        sent), so a turn embeds only what is new; embedding the joined window instead cost a
        fresh pass over every token of it on every turn.
        """
        texts = [u.text for u in ctx.window(6)]
        if not texts:
            return await self.cache.embed_messages([" "])
        mean: Vectors = (await self.cache.embed_messages(texts)).mean(axis=0, keepdims=True)
        norm = float(np.linalg.norm(mean))
        return (mean / np.float32(norm)).astype(np.float32) if norm > 0 else mean

    async def prepare(self, guidelines: Sequence[Guideline]) -> None:
        """Embed and lay out ``guidelines`` ahead of their first ranking (kept as ``rank``
        keeps them: a tuple by identity, any sequence by content)."""
        await self._prepared(guidelines)

    async def _prepared(self, guidelines: Sequence[Guideline]) -> _Prepared:
        found = self._by_identity.get(id(guidelines))
        if found is not None and found.guidelines is guidelines:
            self._by_identity.move_to_end(id(guidelines))
            return found
        key = tuple((g.condition, *g.examples) for g in guidelines)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = await _Prepared.of(guidelines, self.cache)
            while len(self._layouts) > 16:
                self._layouts.popitem(last=False)
        else:
            self._layouts.move_to_end(key)
        found = found.found_for(guidelines)
        if isinstance(guidelines, tuple):
            # Only an immutable sequence is trusted by identity (a list may change in place).
            self._by_identity[id(guidelines)] = found
            while len(self._by_identity) > 16:
                self._by_identity.popitem(last=False)
        return found

    async def rank(self, ctx: TurnContext, guidelines: Sequence[Guideline]) -> Ranking:
        if not guidelines:
            return Ranking([], [], frozenset(), plain=True)
        recent = ctx.recent_customer_messages(3)
        earlier = ctx.earlier_customer_questions(after=len(recent))
        window = await self.window(ctx)
        queries = np.concatenate(
            [
                await self.cache.embed_messages(recent),
                window,
                await self.cache.embed_messages(earlier),
            ]
        )
        # -1 (the window) when there is no customer message yet, nor any earlier question.
        latest = len(recent) - 1
        prepared = await self._prepared(guidelines)
        # Several requests in one message blur its embedding: its sentences stand beside it.
        parts = [sentences(m) for m in recent]
        flat = [p for ps in parts for p in ps]
        if flat:
            queries = np.concatenate([queries, await self.cache.embed_messages(flat)])
        # (guidelines, queries and sentences), in one pass over the matrix; example utterances
        # stand in for their guideline's condition.
        every = prepared.own.best(queries)
        sims = every[:, : len(queries) - len(flat)]
        asked = len(queries) - len(flat)
        rank_weights = self._weights(asked, latest, self.RANK_EARLIER)
        rank_weights[asked - len(earlier) :] = self.RANK_QUESTIONS
        dense = (sims * rank_weights).max(axis=1)
        # The offline tier decides on ``focus``: keep it exactly the condition-and-examples
        # similarity to the latest message, whatever the ranking adds.
        focus = (sims * self._weights(asked, latest, self.FOCUS_EARLIER)).max(axis=1)
        if not self.hybrid:
            order = np.argsort(-dense, kind="stable")
            dense_of = dense.tolist()
            return prepared.ranking(
                order.tolist(),
                Ranked.many(guidelines, order.tolist(), dense_of, focus.tolist(), dense_of),
            )

        # One group per message (with its sentences), one for the window: each ranks the
        # guidelines on its own, and a guideline keeps its best weighted group.
        texts = [*recent, "", *earlier]
        weights = np.concatenate(
            [rank_weights[: len(recent)], [self.RANK_WINDOW], rank_weights[len(recent) + 1 :]]
        ).astype(np.float32)
        best = self._best_views(prepared, queries, every, parts)
        lexical = self._lexical(guidelines, texts)
        scores, dense, lexical_best = self._fuse(best, lexical, weights)
        order = np.argsort(-scores, kind="stable").tolist()
        # Python floats once per array, not a numpy scalar per guideline and field.
        ranked = Ranked.many(
            guidelines,
            order,
            scores.tolist(),
            focus.tolist(),
            dense.tolist(),
            lexical_best.tolist(),
        )
        return prepared.ranking(order, ranked)

    @staticmethod
    def _best_views(
        prepared: _Prepared, queries: Vectors, sims: F32, parts: Sequence[Sequence[str]]
    ) -> list[F32]:
        """Per query group (each recent message with its sentences ``parts``, the window, each
        earlier question), each guideline's best similarity over its views (condition, examples,
        customer's voice, core) and over the group's texts. ``queries`` end with the sentences,
        and ``sims`` has a column per query."""
        sentences_at = len(queries) - sum(len(ps) for ps in parts)
        if sentences_at < len(queries):
            sims = sims.copy()
            np.maximum(sims[:, sentences_at:], np.float32(-1.0), out=sims[:, sentences_at:])
        if prepared.layout.views:
            # -inf for a guideline without other views: it keeps its value.
            sims = np.maximum(sims, prepared.views.best(queries))
        groups: list[list[int]] = [[i] for i in range(sentences_at)]
        column = sentences_at
        for i, ps in enumerate(parts):
            groups[i].extend(range(column, column + len(ps)))
            column += len(ps)
        return [sims[:, g].max(axis=1) for g in groups]

    def _lexical(self, guidelines: Sequence[Guideline], texts: Sequence[str]) -> list[F32]:
        """BM25 of every guideline per text (zeros for an empty one: the window has none)."""
        zeros = np.zeros(len(guidelines), dtype=np.float32)
        if self.lexical_weight <= 0:
            return [zeros] * len(texts)
        index = self.lexical.index(guidelines)
        return [index.scores(t) if t else zeros for t in texts]

    def _fuse(
        self, dense: Sequence[F32], lexical: Sequence[F32], weights: F32
    ) -> tuple[F32, F32, F32]:
        """Reciprocal-rank fusion within each group, the best weighted group counting; also
        the best weighted similarity and BM25 (for traces)."""
        scores = np.zeros(len(dense[0]), dtype=np.float64)
        for d, lex, weight in zip(dense, lexical, weights.tolist(), strict=True):
            fused = 1.0 / (self.RRF_K + _ranks(d))
            # Only guidelines that share a term with the message get a lexical rank.
            hit = lex > 0
            if hit.any():
                fused[hit] += self.lexical_weight / (self.RRF_K + _ranks(lex)[hit])
            np.maximum(scores, fused * weight, out=scores)
        # 1.0: first in both rankings of the latest message.
        normalised = scores * (self.RRF_K + 1.0) / (1.0 + self.lexical_weight)
        column = weights[:, None]
        return (
            normalised.astype(np.float32),
            (np.stack(dense) * column).max(axis=0),
            (np.stack(lexical) * column).max(axis=0),
        )

    @staticmethod
    def _weights(count: int, latest: int, earlier: float) -> F32:
        weights = np.full(count, earlier, dtype=np.float32)
        weights[latest] = 1.0
        return weights
