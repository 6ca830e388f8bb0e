"""``tactful evaluate --agent X``: a running server checks an agent's guidelines for
near-duplicates and contradictions (``POST /evaluations``), and the findings are printed,
contradictions first. Exit 0 when nothing is found, 3 when something is (for CI), 1 on a
failure. ``--json`` prints the evaluation as the API gives it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from tactful.cli.admin import ApiKey, AsJson, Url, call, print_json, row, table
from tactful.cli.files import AgentArg, resolve_agent
from tactful.cli.output import console, fail, note
from tactful.client import EvaluationInfo, TactfulClient
from tactful.domain.evaluations import FindingKind, GuidelineRef

FOUND = 3
STYLES = {
    FindingKind.CONTRADICTION: "red",
    FindingKind.POSSIBLE_CONTRADICTION: "red",
    FindingKind.DUPLICATE: "yellow",
    FindingKind.SIMILAR: "yellow",
}


def _named(ref: GuidelineRef) -> str:
    action = f" -> {ref.action}" if ref.action else ""
    return f"{ref.guideline_id}: {ref.condition}{action}"


def evaluate(
    agent: AgentArg,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the evaluation to complete.", min=0)
    ] = 120.0,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Check an agent's guidelines for near-duplicates and contradictions (reports only)."""

    async def run(client: TactfulClient) -> EvaluationInfo:
        agent_id = resolve_agent(await client.list_agents(), agent)
        return await client.evaluate_agent(agent_id, wait=wait)

    evaluation = call(url, api_key, run)
    if as_json:
        print_json(evaluation)
    elif evaluation.status == "failed":
        fail(f"the evaluation failed: {evaluation.error}")
    else:
        found = evaluation.findings
        if not found:
            note("no near-duplicates or contradictions found")
        else:
            t = table("finding", "guidelines", "why")
            for f in found:
                pair = f"{_named(f.first)}\n{_named(f.second)}"
                row(
                    t,
                    Text(f.kind.value, style=STYLES[f.kind]),
                    pair,
                    f"{f.reason} ({f.decided_by.value})",
                )
            console.print(t)
    if evaluation.findings:
        raise typer.Exit(FOUND)
