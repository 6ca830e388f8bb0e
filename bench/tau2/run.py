"""Run τ²-bench with tactful as the agent, and print pass^1..pass^k.

    python bench/tau2/run.py --domain retail --num-trials 4 --user-llm gpt-4.1

in a virtual environment holding τ² (``pip install -e <tau2-bench checkout>``) and tactful
(``pip install -e <this clone>``). tactful is configured as always (``TACTFUL_*`` variables or a
``tactful.toml``: docs/models.md); τ²'s user simulator reads its own keys (``OPENAI_API_KEY``...).

What it does: starts a tactful server in this process (a thread of its own, HTTP on loopback),
registers τ²'s domain tools as the tool service ``tau2`` and applies the domain's policy
document (``bench/tau2/<domain>.yaml``); registers the τ² agent ``tactful``, which talks to
that server through its HTTP API; runs τ²'s own runner (``run_domain``: orchestrator, user
simulator, environment, evaluator, results file); prints τ²'s pass^k. The server must be in
this process because tactful's tool calls are handed to τ²'s orchestrator as they happen
(``adapter.ToolBridge``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from adapter import Tau2ToolService, ToolBridge, install_agent  # noqa: E402

import tactful  # noqa: E402
from tactful.llm.base import Embedder, Generator  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TactfulThread:
    """A tactful server with the domain's agent, served over HTTP from a thread of its own (its
    event loop is not τ²'s threads')."""

    def __init__(
        self,
        schemas: Sequence[dict[str, Any]],
        writes: set[str],
        policy: Path,
        *,
        settings: tactful.Settings | None = None,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.bridge = ToolBridge()
        self.service = Tau2ToolService(schemas, self.bridge, consequential=writes)
        self.policy = policy
        base = settings or tactful.Settings()
        self.settings = base.model_copy(update={"host": "127.0.0.1", "port": free_port()})
        self.generator = generator
        self.embedder = embedder
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.agent_id = ""
        self.tier = ""
        self._ready: Future[None] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="tactful", daemon=True)

    def __enter__(self) -> TactfulThread:
        self._thread.start()
        self._ready.result(timeout=300)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with tactful.Server(
                settings=self.settings, generator=self.generator, embedder=self.embedder
            ) as server:
                self.agent_id = await install_agent(server, self.service, self.policy)
                self.tier = server.runtime.tier_reason
                await server.start_http()
                self._ready.set_result(None)
                await self._stop.wait()
        except BaseException as e:
            if not self._ready.done():
                self._ready.set_exception(e)
            raise


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", default="retail")
    parser.add_argument("--policy", type=Path, help="default: bench/tau2/<domain>.yaml")
    parser.add_argument("--num-trials", type=int, default=1)
    parser.add_argument("--num-tasks", type=int)
    parser.add_argument("--task-ids", nargs="+")
    parser.add_argument("--task-split", default="base")
    parser.add_argument("--user-llm", default="gpt-4.1")
    parser.add_argument("--user-llm-args", type=json.loads, default={"temperature": 0.0})
    parser.add_argument("--max-concurrency", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--save-to", help="results file name (τ²'s data/simulations)")
    parser.add_argument("--turn-timeout", type=float, default=300.0)
    return parser.parse_args(argv)


def run(
    args: argparse.Namespace,
    *,
    generator: Generator | None = None,
    embedder: Embedder | None = None,
) -> dict[int, float]:
    """Run τ² on ``args``; τ²'s pass^k by k. ``generator`` and ``embedder`` replace tactful's
    configured ones (a scripted model, for a run without a model)."""
    from agent import AGENT_NAME, Target, factory, mutating
    from tau2.data_model.simulation import TextRunConfig
    from tau2.metrics.agent_metrics import compute_metrics
    from tau2.registry import registry
    from tau2.runner import run_domain

    policy = args.policy or HERE / f"{args.domain}.yaml"
    tools = registry.get_env_constructor(args.domain)().get_tools()
    schemas = [t.openai_schema for t in tools]
    with TactfulThread(
        schemas, mutating(tools), policy, generator=generator, embedder=embedder
    ) as served:
        print(f"tactful: agent {served.agent_id} at {served.url}; {served.tier}", flush=True)
        target = Target(
            served.url, served.agent_id, served.service, turn_timeout_s=args.turn_timeout
        )
        if AGENT_NAME not in registry.get_agents():
            registry.register_agent_factory(factory(target), AGENT_NAME)
        config = TextRunConfig(
            domain=args.domain,
            agent=AGENT_NAME,
            llm_agent="tactful",
            user="user_simulator",
            llm_user=args.user_llm,
            llm_args_user=args.user_llm_args,
            num_trials=args.num_trials,
            num_tasks=args.num_tasks,
            task_ids=args.task_ids,
            task_split_name=args.task_split,
            max_concurrency=args.max_concurrency,
            max_steps=args.max_steps,
            seed=args.seed,
            save_to=args.save_to,
        )
        results = run_domain(config)
    metrics = compute_metrics(results)
    print(f"tactful on τ² {args.domain}: {len(results.simulations)} simulations")
    print(f"  average reward: {metrics.avg_reward:.3f}")
    for k, value in sorted(metrics.pass_hat_ks.items()):
        print(f"  pass^{k}: {value:.3f}")
    return dict(metrics.pass_hat_ks)


if __name__ == "__main__":
    run(arguments())
