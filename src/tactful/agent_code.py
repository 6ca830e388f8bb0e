"""The code an SDK ``Agent`` runs in this process: code matchers, hooks (on a guideline's
selection, on a message, around the stages of a turn: docs/hooks.md) and retrievers. Held in
memory: a program attaches them again when it starts, as it defines its agents again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tactful.domain import Guideline
from tactful.engine.hooks import Hooks, MessageHook, Predicate, SelectedHook, StageHook
from tactful.engine.retrievers import Retriever
from tactful.errors import ValidationError

if TYPE_CHECKING:
    from tactful.runtime import Runtime

GuidelineRef = Guideline | str


class AgentCode:
    """Code matchers, hooks and retrievers of one agent (a part of ``tactful.Agent``)."""

    runtime: Runtime

    @property
    def id(self) -> str:
        raise NotImplementedError

    @property
    def tag(self) -> str:
        raise NotImplementedError

    def _guideline_id(self, guideline: GuidelineRef) -> str:
        raise NotImplementedError

    def _hooks(self) -> Hooks:
        return self.runtime.engine.hooks

    def match_with(self, guideline: GuidelineRef, predicate: Predicate) -> Predicate:
        """Decide whether ``guideline`` applies with ``predicate(MatchContext)`` (plain or
        async, returning a bool) instead of a model check. In memory: register it again when
        the program starts. Returns ``predicate``."""
        self._hooks().add_matcher(self._guideline_id(guideline), predicate)
        return predicate

    def on_selected(self, guideline: GuidelineRef, hook: SelectedHook) -> SelectedHook:
        """Call ``hook(MatchContext, Guideline)`` whenever ``guideline`` is selected in a turn.
        Its errors are logged and traced, never raised. Returns ``hook``."""
        self._hooks().add_selected(self._guideline_id(guideline), hook)
        return hook

    def on_message(self, hook: MessageHook) -> MessageHook:
        """Call ``hook(MatchContext, Event)`` whenever this agent has sent a message (usable as
        a decorator). Its errors are logged and traced, never raised. Returns ``hook``."""
        self._hooks().add_message(self.id, hook)
        return hook

    def before(self, stage: str, hook: StageHook) -> StageHook:
        """Call ``hook(TurnView)`` before ``stage`` of this agent's turns (retrieve, match,
        resolve, act, compose, emit). It returns None to go on, or a ``tactful.Bail`` to end
        the turn there (silently, or handing the session to a person). Its errors are logged
        and traced, never raised. Returns ``hook``; docs/hooks.md."""
        return self._stage_hook("before", stage, hook)

    def after(self, stage: str, hook: StageHook) -> StageHook:
        """Call ``hook(TurnView)`` after ``stage`` of this agent's turns (context, retrieve,
        match, resolve, act, compose, emit), with what the stage produced; as ``before``."""
        return self._stage_hook("after", stage, hook)

    def on_error(self, hook: StageHook) -> StageHook:
        """Call ``hook(TurnView)`` when a stage of this agent's turns raised (``view.error``);
        the turn then fails as it would have (an ``error`` status). Usable as a decorator."""
        self._hooks().add_stage(self.id, "error", "*", hook)
        return hook

    def _stage_hook(self, when: str, stage: str, hook: StageHook) -> StageHook:
        try:
            self._hooks().add_stage(self.id, "before" if when == "before" else "after", stage, hook)
        except ValueError as e:
            raise ValidationError(str(e)) from None
        return hook

    def attach_retriever(
        self,
        retriever: Retriever,
        *,
        id: str | None = None,
        guideline: GuidelineRef | None = None,
    ) -> Retriever:
        """Run ``retriever(RetrieverContext)`` (plain or async) each turn of this agent, while
        matching runs; with ``guideline``, only in turns where that guideline is active (while
        the tools run). It returns data for the reply, or a ``tactful.RetrieverResult`` with
        data, templates, fields and transient guidelines. ``id`` names it (default: the
        function's name); attaching again under the same id replaces it. In memory: attach it
        again when the program starts. Returns ``retriever``."""
        owner = f"guideline:{self._guideline_id(guideline)}" if guideline is not None else self.tag
        name = id or getattr(retriever, "__name__", None) or "retriever"
        self.runtime.engine.retrievers.add(owner, name, retriever)
        return retriever
