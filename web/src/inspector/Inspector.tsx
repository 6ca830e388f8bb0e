// The trace inspector: why the agent said what it said in one turn.
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { CannedResponse, JourneyGraph as Graph, JourneyRun, JourneyStep, MatchVerdict, Trace } from "../api/types";
import { JourneyGraph } from "../journeys/JourneyGraph";
import { errorText, Json, ms, Section, useLoad } from "../ui";
import { composition, modelTotals, toolCalls, waterfall } from "./trace";

/** The trace, asked for again while its turn is still running (404 until it ends). */
function useTrace(traceId: string): { trace: Trace | null; problem: string | null; waiting: boolean } {
  const [state, setState] = useState<{ trace: Trace | null; problem: string | null; waiting: boolean }>({ trace: null, problem: null, waiting: false });
  useEffect(() => {
    let live = true;
    let timer = 0;
    setState({ trace: null, problem: null, waiting: false });
    const load = (attempt: number) =>
      api.trace(traceId).then(
        (trace) => live && setState({ trace, problem: null, waiting: false }),
        (e) => {
          if (!live) return;
          if (e instanceof ApiError && e.status === 404 && attempt < 60) {
            setState({ trace: null, problem: null, waiting: true });
            timer = window.setTimeout(() => load(attempt + 1), 1000);
          } else setState({ trace: null, problem: errorText(e), waiting: false });
        },
      );
    void load(0);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [traceId]);
  return state;
}

export function Inspector({ traceId, onClose }: { traceId: string; onClose?: () => void }) {
  const { trace, problem, waiting } = useTrace(traceId);
  return (
    <div className="inspector" data-trace-id={traceId}>
      <header className="inspector-header">
        <h2>Trace</h2>
        <span className="mono muted">{traceId}</span>
        {onClose && (
          <button type="button" className="link close" onClick={onClose} aria-label="Close the inspector">
            ✕
          </button>
        )}
      </header>
      {problem && <p className="error">{problem}</p>}
      {waiting && <p className="muted">The turn is still running; its trace is stored when it ends…</p>}
      {trace && <TraceView trace={trace} />}
    </div>
  );
}

function TraceView({ trace }: { trace: Trace }) {
  const templates = useLoad(() => api.cannedResponses(trace.agent_id), [trace.agent_id]);
  const texts = new Map<string, CannedResponse>(templates.state === "done" ? templates.value.map((c) => [c.id, c]) : []);
  const matched = (trace.matches ?? []).filter((m) => m.applies);
  const final = new Set(trace.final_guideline_ids ?? []);
  const usage = trace.usage;
  const journeys = byJourney(trace.journeys ?? []);
  return (
    // data-loading: parts still being fetched (browser tests wait until none is left).
    <div className="trace" data-status={trace.status} data-loading={templates.state === "loading" ? "templates" : undefined}>
      <p className="summary">
        <span className="badge">{trace.status}</span> <span className="badge">{trace.tier || "tier ?"}</span>
        {trace.attempt > 1 && <span className="badge warn">attempt {trace.attempt}</span>}
        {usage && (
          <span className="muted">
            {usage.model_calls} model calls · {usage.prompt_tokens} prompt tokens ({usage.cached_tokens} cached) · {usage.completion_tokens} completion
            {usage.cost_usd !== null && usage.cost_usd !== undefined ? ` · $${usage.cost_usd.toFixed(4)}` : ""}
          </span>
        )}
      </p>
      {trace.error && <p className="error">{trace.error}</p>}
      {(trace.degraded ?? []).map((d, i) => (
        <p key={i} className="warn-line">
          degraded: {d}
        </p>
      ))}

      <Section title="Guidelines applied" count={final.size}>
        <ul className="plain" data-list="final-guidelines">
          {[...final].map((id) => {
            const m = matched.find((x) => x.guideline_id === id);
            return (
              <li key={id} data-guideline-id={id}>
                <span className="mono">{id}</span>
                {m && (
                  <div className="muted">
                    when {m.condition}
                    {m.action ? ` → ${m.action}` : ""}
                  </div>
                )}
              </li>
            );
          })}
        </ul>
      </Section>

      {journeys.length > 0 && (
        <Section title="Journeys" count={journeys.length}>
          {journeys.map((steps) => (
            <JourneyView key={steps[0]?.journey_id} steps={steps} sessionId={trace.session_id} />
          ))}
        </Section>
      )}
      <Tools trace={trace} />
      <Composition trace={trace} texts={texts} />
      <Stages timings={trace.stage_timings_ms} />

      <Section title="Checks" count={trace.matches?.length ?? 0}>
        <Checks matches={trace.matches ?? []} />
      </Section>
      <Section title="Relationships" count={trace.resolution?.length ?? 0} open={(trace.resolution?.length ?? 0) > 0}>
        <ul className="plain">
          {(trace.resolution ?? []).map((r, i) => (
            <li key={i} data-rule={r.rule}>
              <span className={`badge effect-${r.effect}`}>{r.effect}</span> <span className="mono">{r.guideline_id}</span> by <b>{r.rule}</b>
              {r.because?.length ? <span className="muted"> because of {r.because.join(", ")}</span> : null}
              {r.detail && <div className="muted">{r.detail}</div>}
            </li>
          ))}
        </ul>
      </Section>

      <Section title="Candidates" count={trace.candidates?.length ?? 0} open={false}>
        <table>
          <thead>
            <tr>
              <th>#</th>
              <th>guideline</th>
              <th>tier</th>
              <th>score</th>
              <th>why a candidate</th>
            </tr>
          </thead>
          <tbody>
            {(trace.candidates ?? []).map((c) => (
              <tr key={c.guideline_id} data-guideline-id={c.guideline_id}>
                <td>{c.rank}</td>
                <td>
                  <span className="mono">{c.guideline_id}</span>
                  <div className="muted">{c.condition}</div>
                </td>
                <td>{c.tier === 1 ? "1 detailed" : "2 screen"}</td>
                <td>{c.score.toFixed(3)}</td>
                <td>{(c.reasons ?? []).join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <ModelCalls trace={trace} />
    </div>
  );
}
function Stages({ timings }: { timings: Trace["stage_timings_ms"] }) {
  const { bars, totalMs } = waterfall(timings);
  return (
    <Section title="Stages" count={bars.length}>
      <p className="muted">{ms(totalMs)} in all; each stage starts where the one before ended.</p>
      <div className="waterfall" role="list">
        {bars.map((b) => (
          <div key={b.stage} className="bar-row" role="listitem" data-stage={b.stage}>
            <span className="stage-name">{b.stage}</span>
            <span className="bar-track">
              <span className="bar" style={{ left: `${b.left * 100}%`, width: `max(${b.width * 100}%, 2px)` }} />
            </span>
            <span className="stage-ms">{ms(b.durationMs)}</span>
          </div>
        ))}
      </div>
    </Section>
  );
}

/** The turn's journey steps, one list per journey, in the order they happened. */
function byJourney(steps: JourneyStep[]): JourneyStep[][] {
  const groups = new Map<string, JourneyStep[]>();
  for (const step of steps) groups.set(step.journey_id, [...(groups.get(step.journey_id) ?? []), step]);
  return [...groups.values()];
}

function JourneyView({ steps, sessionId }: { steps: JourneyStep[]; sessionId: string }) {
  const first = steps[0] as JourneyStep;
  const last = steps[steps.length - 1] as JourneyStep;
  const graph = useLoad<Graph>(() => api.journeyGraph(first.journey_id), [first.journey_id]);
  const runs = useLoad<JourneyRun[]>(() => api.sessionJourneys(sessionId), [sessionId, first.journey_id]);
  const run = runs.state === "done" ? runs.value.find((r) => r.journey_id === first.journey_id) : undefined;
  const current = last.state_after ?? null;
  // The session's path up to where this turn left it (a later turn may have gone on).
  let path: string[] = [...(first.state_before ? [first.state_before] : []), ...steps.flatMap((s) => s.entered ?? [])];
  if (run?.path && current) {
    const end = run.path.lastIndexOf(current);
    if (end >= 0) path = run.path.slice(0, end + 1);
  }
  return (
    <div
      className="journey-step"
      data-journey-id={first.journey_id}
      data-loading={runs.state === "loading" || graph.state === "loading" ? "journey" : undefined}
    >
      <p>
        <b>{first.title}</b>: {first.label_before ?? "(not started)"} → <b data-current-label>{last.label_after ?? last.status_after}</b>
        {last.status_after !== "active" && <span className="badge">{last.status_after}</span>}
      </p>
      {steps.map((step, i) => (
        <div key={i} className="step">
          <span className="badge">{step.kind}</span>
          {step.label_after && <span>to {step.label_after} </span>}
          {step.method && <span className="muted">· by {step.method}</span>}
          {step.rationale && <div className="muted">{step.rationale}</div>}
          {(step.considered ?? []).length > 1 && (
            <details>
              <summary className="muted">{(step.considered ?? []).length} transitions considered</summary>
              <ul className="plain small">
                {(step.considered ?? []).map((t) => (
                  <li key={t.transition_id} className={t.taken ? "taken" : ""}>
                    {t.taken ? "✓" : "·"} {t.condition ?? "(unconditional)"} {t.why && t.why !== "unconditional" && <span className="muted">: {t.why}</span>}
                  </li>
                ))}
              </ul>
            </details>
          )}
        </div>
      ))}
      {graph.state === "done" && (
        <div className="graph-scroll">
          <JourneyGraph graph={graph.value} path={path} current={current} title={first.title} />
        </div>
      )}
      {graph.state === "failed" && <p className="error">{errorText(graph.error)}</p>}
    </div>
  );
}

function Check({ m }: { m: MatchVerdict }) {
  return (
    <li className={m.applies ? "applies" : "not"} data-guideline-id={m.guideline_id} data-applies={m.applies ? "true" : "false"}>
      <div>
        <span className={m.applies ? "verdict yes" : "verdict no"}>{m.applies ? "applies" : "does not apply"}</span>{" "}
        <span className="mono">{m.guideline_id}</span>
        {m.score !== null && m.score !== undefined && <span className="muted"> · score {m.score.toFixed(3)}</span>}
        {m.method && <span className="muted"> · {m.method}</span>}
        {m.tier === 2 && <span className="muted"> · screened</span>}
      </div>
      <div className="muted">condition: {m.condition}</div>
      {m.condition_restated && <div>restated: {m.condition_restated}</div>}
      {m.evidence && <div>evidence: {m.evidence}</div>}
      {m.rationale && <div className="muted">{m.rationale}</div>}
      {m.applied_before && <div className="muted">applied before; re-apply: {String(m.reapply)}</div>}
      {(m.tool_calls ?? []).map((call, i) => (
        <div key={i} className="muted">
          proposes {call.tool}(
          {(call.arguments ?? []).map((a) => `${a.name}=${JSON.stringify(a.value)} from ${a.source}`).join(", ")})
        </div>
      ))}
    </li>
  );
}

/** The verdicts: those that apply, then (folded) those that do not. */
function Checks({ matches }: { matches: MatchVerdict[] }) {
  const yes = matches.filter((m) => m.applies);
  const no = matches.filter((m) => !m.applies);
  return (
    <>
      <ul className="checks">
        {yes.map((m) => (
          <Check key={m.guideline_id} m={m} />
        ))}
      </ul>
      {no.length > 0 && (
        <details>
          <summary className="muted">{no.length} that do not apply</summary>
          <ul className="checks">
            {no.map((m) => (
              <Check key={m.guideline_id} m={m} />
            ))}
          </ul>
        </details>
      )}
    </>
  );
}

function Tools({ trace }: { trace: Trace }) {
  const calls = toolCalls(trace);
  if (calls.length === 0) return null;
  return (
    <Section title="Tool calls" count={calls.length}>
      {calls.map((c, i) => (
        <div key={i} className="tool-call" data-tool-id={c.toolId}>
          <p>
            <span className="mono">{c.toolId}</span>
            {c.guidelineId && <span className="muted"> for {c.guidelineId}</span>}
            {c.ran ? <span className="muted"> · {ms(c.durationMs)}</span> : <span className="badge warn">not run</span>}
            {c.timedOut && <span className="badge warn">timed out</span>}
          </p>
          <table className="args">
            <tbody>
              {c.arguments.map((a) => (
                <tr key={a.name} data-argument={a.name}>
                  <td className="mono">{a.name}</td>
                  <td className="mono">{JSON.stringify(a.value)}</td>
                  <td>{a.source && <span className={`badge source-${a.source}`}>from {a.source}</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {c.missing.length > 0 && <p className="warn-line">missing: {c.missing.join(", ")}</p>}
          {c.blocked && <p className="warn-line">blocked: {c.blocked}</p>}
          {c.error && <p className="error">{c.error}</p>}
          {c.result !== undefined && (
            <details>
              <summary>result</summary>
              <Json value={c.result} />
            </details>
          )}
        </div>
      ))}
    </Section>
  );
}

function Composition({ trace, texts }: { trace: Trace; texts: Map<string, CannedResponse> }) {
  const c = composition(trace);
  const text = (id: string) => texts.get(id)?.value;
  return (
    <Section title="Composition">
      <p>
        mode <b>{c.mode ?? "?"}</b>
        {c.modeRule && <span className="muted"> (decided by {c.modeRule})</span>} · reply <b>{c.method ?? "?"}</b>
        {c.streamed && <span className="muted"> · streamed in {c.streamed.chunks} pieces</span>}
      </p>
      {c.reason && <p className="muted">{c.reason}</p>}
      {c.preamble && <p className="muted">preamble: {c.preamble}</p>}
      <DrewOn trace={trace} />
      {c.sent.length > 0 && (
        <div data-list="sent-templates">
          <h4>Sent</h4>
          {c.sent.map((id) => (
            <blockquote key={id} className="template chosen" data-template-id={id}>
              <span className="mono">{id}</span>
              {text(id) && <div>{text(id)}</div>}
            </blockquote>
          ))}
        </div>
      )}
      {c.considered.length > 0 && (
        <>
          <h4>Templates considered</h4>
          <ul className="plain small">
            {c.considered.map((t) => (
              <li key={t.id} className={c.sent.includes(t.id) ? "taken" : ""}>
                <span className="mono">{t.id}</span> {t.guidelineId && <span className="muted">of {t.guidelineId}</span>}
                {t.score !== null && <span className="muted"> · {t.score.toFixed(3)}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
      {c.disqualified.length > 0 && (
        <>
          <h4>Disqualified</h4>
          <ul className="plain small">
            {c.disqualified.map((t) => (
              <li key={t.id} data-template-id={t.id}>
                <span className="mono">{t.id}</span>
                {t.missingFields.length > 0 && <span> missing {t.missingFields.map((f) => `{{${f}}}`).join(", ")}</span>}
                {t.reason && <span className="muted"> · {t.reason}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </Section>
  );
}

/** What else shaped the reply: a clarifying question, the self-check, glossary terms,
 * context variables and retrievers. */
function DrewOn({ trace }: { trace: Trace }) {
  const c = trace.composition;
  if (!c) return null;
  return (
    <>
      {c.clarification && (
        <p>
          asked which the customer means ({c.clarification.observation_id}): {c.clarification.option_ids.join(", ")}
        </p>
      )}
      {c.self_check && (
        <div className="self-check">
          <p>
            self-check: {c.self_check.failed ? `failed (${c.self_check.failed})` : c.self_check.revised ? "revised the draft" : "the draft passed"}
            {(c.self_check.broken ?? []).length > 0 && <span className="muted"> · broke {(c.self_check.broken ?? []).join(", ")}</span>}
          </p>
          {c.self_check.revised && <p className="muted">draft: {c.self_check.draft}</p>}
        </div>
      )}
      {(c.glossary ?? []).length > 0 && (
        <p className="muted">glossary: {(c.glossary ?? []).map((t) => `${t.term} (${t.why})`).join(", ")}</p>
      )}
      {(c.variables ?? []).length > 0 && (
        <p className="muted">variables: {(c.variables ?? []).map((v) => `${v.name}=${JSON.stringify(v.value)}`).join(", ")}</p>
      )}
      {(c.retrievers ?? []).length > 0 && (
        <p className="muted">
          retrievers: {(c.retrievers ?? []).map((r) => `${r.name} ${r.ok ? ms(r.took_ms) : `failed: ${r.error ?? ""}`}`).join(", ")}
        </p>
      )}
    </>
  );
}

function ModelCalls({ trace }: { trace: Trace }) {
  const calls = trace.model_calls ?? [];
  const totals = modelTotals(calls);
  return (
    <Section title="Model calls" count={calls.length} open={calls.length > 0}>
      {calls.length === 0 ? (
        <p className="muted">None: {trace.tier === "offline" ? "the offline tier decides without a model" : "no model was called"}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>stage</th>
              <th>model</th>
              <th>prompt</th>
              <th>cached</th>
              <th>completion</th>
              <th>latency</th>
              <th>cost</th>
            </tr>
          </thead>
          <tbody>
            {calls.map((c, i) => (
              <tr key={i} className={c.ok === false ? "failed" : ""}>
                <td>{c.stage}</td>
                <td className="mono">
                  {c.model}
                  {c.provider ? <span className="muted"> ({c.provider})</span> : null}
                  {c.error && <div className="error">{c.error}</div>}
                </td>
                <td>{c.prompt_tokens}</td>
                <td>{c.cached_tokens}</td>
                <td>{c.completion_tokens}</td>
                <td>{ms(c.latency_ms)}</td>
                <td>{c.cost_usd === null || c.cost_usd === undefined ? "–" : `$${c.cost_usd.toFixed(5)}`}</td>
              </tr>
            ))}
            <tr className="totals">
              <td>all</td>
              <td>{totals.calls} calls</td>
              <td>{totals.promptTokens}</td>
              <td>{totals.cachedTokens}</td>
              <td>{totals.completionTokens}</td>
              <td>{ms(totals.latencyMs)}</td>
              <td>{totals.costUsd === null ? "–" : `$${totals.costUsd.toFixed(5)}`}</td>
            </tr>
          </tbody>
        </table>
      )}
    </Section>
  );
}
