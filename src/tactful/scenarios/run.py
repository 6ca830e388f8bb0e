"""Running scenarios: each run on a fresh in-memory server with the file's agent, its tools
stubbed, a customer of its own, the fixtures' variables and clock; then pass^k over the runs.

A run never raises for what the agent does: an agent file that does not load, a tool stub
naming an unknown tool or a failing turn become the run's ``error``, and expectations that do
not hold its failed checks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import comb

import numpy as np

from tactful.agent_files import load_agent_file
from tactful.config import Settings
from tactful.domain import ContextVariable, Customer
from tactful.domain.common import at
from tactful.engine.variables import own_key, write_value
from tactful.errors import TactfulError
from tactful.llm.base import Embedder, Generator, Vectors
from tactful.runtime import default_embedder
from tactful.scenarios.expectations import Check, check_turn
from tactful.scenarios.judge import judge
from tactful.scenarios.simulate import check_end, converse
from tactful.scenarios.spec import Fixtures, Scenario, Step, Suite
from tactful.scenarios.stubs import stub_tools
from tactful.scenarios.turns import TurnRecord, take_step
from tactful.server import Server


class SharedEmbedder(Embedder):
    """One embedder for every run of a test session, remembering each text's vector: each
    run's fresh in-memory server would otherwise embed the agent's guidelines again. Servers
    do not close it (``aclose``); the runner closes the one it wraps."""

    LIMIT = 200_000

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self._memo: dict[str, Vectors] = {}

    async def embed(self, texts: Sequence[str]) -> Vectors:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            if len(self._memo) + len(missing) > self.LIMIT:
                self._memo.clear()
            for text, row in zip(missing, await self.inner.embed(missing), strict=True):
                self._memo[text] = row
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    async def aclose(self) -> None:
        """Kept open for the next run (see ``ScenarioRunner.close``)."""


NO_MODEL = "no model is configured (offline tier); set one to judge criteria and simulate customers"


@dataclass
class StepOutcome:
    turn: TurnRecord
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.failed]


@dataclass
class RunOutcome:
    """One run of a scenario: its steps and checks, or why it could not run."""

    number: int
    steps: list[StepOutcome] = field(default_factory=list)
    end: list[Check] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def checks(self) -> list[Check]:
        return [c for s in self.steps for c in s.checks] + self.end

    @property
    def passed(self) -> bool:
        return (
            self.error is None and self.skipped is None and not any(c.failed for c in self.checks)
        )

    @property
    def skipped_checks(self) -> list[Check]:
        return [c for c in self.checks if c.ok is None]


@dataclass
class ScenarioOutcome:
    """Every run of one scenario."""

    suite: Suite
    scenario: Scenario
    runs: list[RunOutcome] = field(default_factory=list)

    @property
    def skipped(self) -> str | None:
        reasons = {r.skipped for r in self.runs}
        return reasons.pop() if len(reasons) == 1 and None not in reasons else None

    @property
    def trials(self) -> int:
        return len([r for r in self.runs if r.skipped is None])

    @property
    def successes(self) -> int:
        return len([r for r in self.runs if r.passed])

    @property
    def passed(self) -> bool:
        return self.skipped is None and self.successes == self.trials

    def pass_hat(self, k: int) -> float | None:
        """pass^k: the chance that k runs drawn from these all pass (τ-bench's estimator,
        C(successes, k) / C(trials, k)); None with fewer than k runs."""
        if k < 1 or self.trials < k:
            return None
        return comb(self.successes, k) / comb(self.trials, k)


def pass_hat(outcomes: Sequence[ScenarioOutcome], k: int) -> float | None:
    """The mean pass^k over scenarios run at least k times (None when none was)."""
    values = [v for o in outcomes if (v := o.pass_hat(k)) is not None]
    return sum(values) / len(values) if values else None


OnRun = Callable[[ScenarioOutcome, RunOutcome], None]


class ScenarioRunner:
    """Runs scenario files. ``generator`` is the agent's model (None: what the settings
    configure; ``offline`` forces the offline tier); ``test_model`` judges criteria and plays
    simulated customers (by default the agent's model, when it has one); ``on_run`` hears of
    each run as it ends, ``on_tier`` of the model tier once."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        generator: Generator | None = None,
        offline: bool = False,
        test_model: Generator | None = None,
        on_run: OnRun | None = None,
        on_tier: Callable[[str], object] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.generator = generator
        self.offline = offline
        self.test_model = test_model
        self.on_run = on_run
        # Hears once which model tier the runs are on (the first server's words for it).
        self.on_tier = on_tier
        self._embedder: SharedEmbedder | None = None

    async def close(self) -> None:
        """Close the embedder the runs shared."""
        if self._embedder is not None:
            await self._embedder.inner.aclose()
            self._embedder = None

    async def __aenter__(self) -> ScenarioRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run_suite(
        self, suite: Suite, *, repeat: int | None = None, names: Sequence[str] = ()
    ) -> list[ScenarioOutcome]:
        outcomes = []
        for scenario in suite.scenarios:
            if names and scenario.name not in names:
                continue
            outcome = ScenarioOutcome(suite, scenario)
            for number in range(1, (repeat or suite.runs_of(scenario)) + 1):
                run = await self.run_once(suite, scenario, number)
                outcome.runs.append(run)
                if self.on_run is not None:
                    self.on_run(outcome, run)
            outcomes.append(outcome)
        return outcomes

    async def run_once(self, suite: Suite, scenario: Scenario, number: int = 1) -> RunOutcome:
        """One run of ``scenario`` on a fresh server."""
        run = RunOutcome(number)
        started = time.perf_counter()
        fixtures = suite.fixtures_of(scenario)
        clock = at(fixtures.time) if fixtures.time is not None else contextlib.nullcontext()
        try:
            with clock:
                await self._run(suite, scenario, fixtures, run)
        except TactfulError as e:
            run.error = str(e)
        run.seconds = time.perf_counter() - started
        return run

    def _server(self) -> Server:
        if self._embedder is None:
            self._embedder = SharedEmbedder(default_embedder(self.settings))
        return Server(
            settings=self.settings,
            transient=True,
            generator=self.generator,
            embedder=self._embedder,
            offline=self.offline,
        )

    async def _run(
        self, suite: Suite, scenario: Scenario, fixtures: Fixtures, run: RunOutcome
    ) -> None:
        async with self._server() as server:
            tell, self.on_tier = self.on_tier, None
            if tell is not None:
                tell(server.runtime.tier_reason)
            # The definitions in one transaction of the run's own store: a third of each run's
            # time saved (Voltmart's 47 scenarios: 22 s against 31).
            async with server.runtime.store.transaction():
                agent_id = await load_agent(server, suite)
            test_model = self.test_model or server.runtime.engine.generator
            if scenario.simulate is not None and test_model is None:
                run.skipped = f"simulated customer: {NO_MODEL}"
                return
            await stub_tools(server.runtime.engine.tools, fixtures.tools, fixtures.real_tools or [])
            customer = await make_customer(server, fixtures)
            await set_variables(server, agent_id, customer, fixtures)
            session = await server.create_session(agent_id, customer.id, title=scenario.name)
            index = 0

            async def take(step: Step) -> TurnRecord:
                nonlocal index
                index += 1
                return await take_step(server, session.id, index, step)

            if scenario.simulate is not None:
                assert test_model is not None
                turns, reached, ended = await converse(test_model, scenario.simulate, take)
                run.steps = [StepOutcome(t, []) for t in turns]
                if scenario.end is not None:
                    run.end = check_end(scenario.end, turns, reached, ended)
                return
            messages: list[tuple[str, str]] = []
            for step in scenario.steps:
                turn = await take(step)
                if step.customer is not None:
                    messages.append(("customer", step.customer))
                messages += [("agent", reply) for reply in turn.replies]
                checks = check_turn(step.expect, turn)
                checks += await judge(test_model, step.expect.criteria, messages, no_model=NO_MODEL)
                run.steps.append(StepOutcome(turn, checks))


async def load_agent(server: Server, suite: Suite) -> str:
    """Load the suite's agent file on ``server``; the id of the agent the scenarios talk to."""
    agents = await load_agent_file(server, suite.agent_path())
    ids = [a.id for a in agents]
    if suite.agent_id is not None:
        if suite.agent_id not in ids:
            raise TactfulError(f"{suite.agent} defines no agent {suite.agent_id!r} (it has {ids})")
        return suite.agent_id
    if len(ids) != 1:
        raise TactfulError(f"{suite.agent} defines {len(ids)} agents: say which with agent_id")
    return ids[0]


async def make_customer(server: Server, fixtures: Fixtures) -> Customer:
    """The run's customer: the guest, or a named customer of this run with its tags."""
    given = fixtures.customer
    if given is None or given.guest:
        return await server.runtime.store.get(Customer, await server.guest_customer_id())
    assert given.name is not None
    tags = [(await server.create_tag(name)).id for name in given.tags]
    return await server.create_customer(given.name, metadata=given.metadata, tags=tags)


async def set_variables(
    server: Server, agent_id: str, customer: Customer, fixtures: Fixtures
) -> None:
    """The fixtures' context variable values, for this customer."""
    if not fixtures.variables:
        return
    store = server.runtime.store
    variables = await store.list(ContextVariable)
    for name, value in fixtures.variables.items():
        found = next((v for v in variables if name in (v.name, v.id)), None)
        if found is None:
            known = ", ".join(sorted(v.name for v in variables)) or "none"
            raise TactfulError(f"no context variable {name!r} (the agent has: {known})")
        await write_value(store, found.id, own_key(customer), value)
