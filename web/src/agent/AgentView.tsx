// What an agent is made of (read-only): guidelines with their relationships and tools, journeys
// as graphs, canned responses, glossary, context variables, tools and services.
import { useState } from "react";
import { api } from "../api/client";
import type { Agent, GuidelineDetail, Relationship } from "../api/types";
import { JourneyGraph } from "../journeys/JourneyGraph";
import { Section, Show, useLoad } from "../ui";

/** Runs `work` over `items`, at most `limit` at a time. */
async function pooled<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i] as T);
      }
    }),
  );
  return out;
}

function end(r: Relationship, side: "source" | "target"): string {
  const g = r[`${side}_guideline`];
  const t = r[`${side}_tag`];
  const tool = r[`${side}_tool`];
  return g?.id ?? (t ? `tag ${t.name}` : tool ? `tool ${tool.name}` : "?");
}

const RELATION_TEXT: Record<string, string> = {
  priority: "takes priority over",
  entailment: "entails",
  dependency: "depends on",
  dependency_any: "depends on any of",
  exclusion: "excludes",
  disambiguation: "disambiguates",
  overlap: "overlaps",
  reevaluation: "is re-evaluated after",
};

export function AgentView({ agentId, agents }: { agentId: string; agents: Agent[] }) {
  const agent = agents.find((a) => a.id === agentId);
  const guidelines = useLoad(async () => {
    const list = await api.guidelines(agentId);
    return pooled(list, 6, (g) => api.guideline(g.id));
  }, [agentId]);
  const relationships = useLoad(() => api.relationships(), [agentId]);
  const journeys = useLoad(async () => {
    const list = await api.journeys(agentId);
    return Promise.all(list.map(async (j) => ({ journey: j, graph: await api.journeyGraph(j.id) })));
  }, [agentId]);
  const canned = useLoad(() => api.cannedResponses(agentId), [agentId]);
  const terms = useLoad(() => api.terms(agentId), [agentId]);
  const variables = useLoad(() => api.variables(agentId), [agentId]);
  const services = useLoad(() => api.services(), [agentId]);
  const [filter, setFilter] = useState("");

  if (!agent) return <p className="error">No agent {agentId}.</p>;
  const rels = relationships.state === "done" ? relationships.value : [];
  const matches = (d: GuidelineDetail) =>
    !filter || `${d.guideline.id} ${d.guideline.condition} ${d.guideline.action ?? ""}`.toLowerCase().includes(filter.toLowerCase());

  return (
    <div className="agent-view" data-agent-id={agent.id}>
      <header>
        <h2>{agent.name}</h2>
        <p className="muted">{agent.description}</p>
        <p className="muted">
          composition <b>{agent.composition_mode}</b> · replies <b>{agent.message_output_mode}</b> · guest sessions{" "}
          <b>{agent.guest_sessions ? "on" : "off"}</b> · no-match reply: “{agent.no_match_reply}”
        </p>
      </header>

      <Section title="Guidelines" count={guidelines.state === "done" ? guidelines.value.length : undefined}>
        <input className="filter" placeholder="Filter guidelines" aria-label="Filter guidelines" value={filter} onChange={(e) => setFilter(e.target.value)} />
        <Show loaded={guidelines}>
          {(list) => (
            <ul className="guidelines">
              {list.filter(matches).map((d) => {
                const g = d.guideline;
                const mine = rels.filter((r) => end(r, "source") === g.id || end(r, "target") === g.id);
                return (
                  <li key={g.id} data-guideline-id={g.id}>
                    <div>
                      <span className="mono">{g.id}</span> {g.criticality !== "medium" && <span className="badge">{g.criticality}</span>}
                      {g.priority ? <span className="badge">priority {g.priority}</span> : null}
                      {!g.enabled && <span className="badge warn">disabled</span>}
                      {!g.action && <span className="badge">observation</span>}
                    </div>
                    <div>
                      <b>when</b> {g.condition}
                    </div>
                    {g.action && (
                      <div>
                        <b>then</b> {g.action}
                      </div>
                    )}
                    {(d.tool_associations ?? []).length > 0 && (
                      <div className="muted">
                        tools: {(d.tool_associations ?? []).map((t) => `${t.tool_id.service_name}:${t.tool_id.tool_name}`).join(", ")}
                      </div>
                    )}
                    {(g.canned_responses ?? []).length > 0 && <div className="muted">templates: {(g.canned_responses ?? []).join(", ")}</div>}
                    {mine.length > 0 && (
                      <ul className="plain small relations">
                        {mine.map((r) => (
                          <li key={r.id}>
                            {end(r, "source")} <b>{RELATION_TEXT[r.kind] ?? r.kind}</b> {end(r, "target")}
                          </li>
                        ))}
                      </ul>
                    )}
                  </li>
                );
              })}
            </ul>
          )}
        </Show>
      </Section>

      <Section title="Journeys" count={journeys.state === "done" ? journeys.value.length : undefined}>
        <Show loaded={journeys}>
          {(list) =>
            list.length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              list.map(({ journey, graph }) => (
                <div key={journey.id} className="journey" data-journey-id={journey.id}>
                  <h4>{journey.title}</h4>
                  <p className="muted">
                    {journey.description} · starts when: {(journey.conditions ?? []).join(", ")}
                  </p>
                  <div className="graph-scroll">
                    <JourneyGraph graph={graph} title={journey.title} />
                  </div>
                </div>
              ))
            )
          }
        </Show>
      </Section>

      <Section title="Canned responses" count={canned.state === "done" ? canned.value.length : undefined} open={false}>
        <Show loaded={canned}>
          {(list) => (
            <ul className="plain">
              {list.map((c) => (
                <li key={c.id}>
                  <span className="mono">{c.id}</span>
                  <div>{c.value}</div>
                </li>
              ))}
            </ul>
          )}
        </Show>
      </Section>

      <Section title="Glossary" count={terms.state === "done" ? terms.value.length : undefined} open={false}>
        <Show loaded={terms}>
          {(list) => (
            <dl>
              {list.map((t) => (
                <div key={t.id}>
                  <dt>
                    {t.name}
                    {t.synonyms?.length ? <span className="muted"> ({t.synonyms.join(", ")})</span> : null}
                  </dt>
                  <dd>{t.description}</dd>
                </div>
              ))}
            </dl>
          )}
        </Show>
      </Section>

      <Section title="Context variables" count={variables.state === "done" ? variables.value.length : undefined} open={false}>
        <Show loaded={variables}>
          {(list) =>
            list.length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              <ul className="plain">
                {list.map((v) => (
                  <li key={v.id}>
                    <b>{v.name}</b> {v.description && <span className="muted">{v.description}</span>}
                    {v.tool_id && <span className="muted"> · from tool {v.tool_id.service_name}:{v.tool_id.tool_name}</span>}
                    {v.freshness_rules && <span className="muted"> · fresh: {v.freshness_rules}</span>}
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </Section>

      <Section title="Tools and services" open={false}>
        <Show loaded={guidelines}>
          {(list) => {
            const tools = new Map<string, string[]>();
            for (const d of list) {
              for (const t of d.tool_associations ?? []) {
                const id = `${t.tool_id.service_name}:${t.tool_id.tool_name}`;
                tools.set(id, [...(tools.get(id) ?? []), d.guideline.id]);
              }
            }
            return (
              <ul className="plain">
                {[...tools.entries()].map(([id, used]) => (
                  <li key={id}>
                    <span className="mono">{id}</span> <span className="muted">used by {used.join(", ")}</span>
                  </li>
                ))}
              </ul>
            );
          }}
        </Show>
        <Show loaded={services}>
          {(list) =>
            list.length > 0 && (
              <ul className="plain">
                {list.map((s) => (
                  <li key={s.name}>
                    service <b>{s.name}</b> <span className="muted">({s.kind}, {s.url})</span>
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </Section>
    </div>
  );
}
