"""``Agent.evaluate``: an agent's guidelines checked for near-duplicates and contradictions
through the SDK, before and after defining them."""

from __future__ import annotations

from pathlib import Path

import tactful
from tactful.domain.evaluations import FindingKind
from tactful.llm.scripted import HashingEmbedder


async def test_an_agent_evaluates_its_guidelines_and_proposed_ones(tmp_path: Path) -> None:
    async with tactful.Server(data_dir=tmp_path, embedder=HashingEmbedder()) as server:
        agent = await server.create_agent(name="Support")
        other = await server.create_agent(name="Sales")
        refund = await agent.create_guideline(
            condition="The customer asks for a refund", action="Offer a refund"
        )
        # Another agent's guideline is not this agent's concern.
        await other.create_guideline(
            condition="The customer asks for a refund", action="Offer a refund"
        )
        assert await agent.evaluate() == []

        found = await agent.evaluate([("the customer asks for a refund", "Offer a refund.")])
        assert [(f.kind.value, f.first.guideline_id, f.second.payload) for f in found] == [
            ("duplicate", refund.id, 0)
        ]
        await agent.create_guideline(
            condition="The customer asks for a refund!", action="offer a REFUND"
        )
        [finding] = await agent.evaluate()
        assert isinstance(finding, tactful.Finding) and finding.kind is FindingKind.DUPLICATE
        # Nothing was refused or changed.
        assert len(await agent.guidelines()) == 2
