// What the inspector shows of a trace, computed from it (the types are the server's, generated
// from /openapi.json). A section the trace lacks (an older trace) leaves its part empty.
import type { Trace } from "../api/types";

export interface Bar {
  stage: string;
  startMs: number;
  durationMs: number;
  /** Where the bar starts and how wide it is, as fractions of the whole turn (0..1). */
  left: number;
  width: number;
}

/** The stage waterfall: the turn's stages in the order they ran, each starting where the one
 * before ended (the trace records durations, and the stages of a turn run one after another). */
export function waterfall(timings: Record<string, number> | undefined | null): { bars: Bar[]; totalMs: number } {
  const stages = Object.entries(timings ?? {}).filter(([, ms]) => Number.isFinite(ms) && ms >= 0);
  const totalMs = stages.reduce((sum, [, ms]) => sum + ms, 0);
  let start = 0;
  const bars = stages.map(([stage, ms]) => {
    const bar = {
      stage,
      startMs: start,
      durationMs: ms,
      left: totalMs > 0 ? start / totalMs : 0,
      width: totalMs > 0 ? ms / totalMs : 0,
    };
    start += ms;
    return bar;
  });
  return { bars, totalMs };
}

type Composition = NonNullable<Trace["composition"]>;
const EMPTY: Composition = { mode_rule: "" };

export interface TemplateSeen {
  id: string;
  guidelineId: string | null;
  score: number | null;
  missingFields: string[];
  reason: string | null;
}

export interface CompositionView {
  mode: string | null;
  modeRule: string | null;
  method: string | null;
  sent: string[];
  considered: TemplateSeen[];
  disqualified: TemplateSeen[];
  reason: string | null;
  preamble: string | null;
  streamed: { chunks: number; ok: boolean } | null;
}

/** The composition decision: the mode and the rule that chose it, how the reply was written,
 * the templates considered (scored without a model, or shown to the model), those that could
 * not be sent and why, and the ones sent. Sections the trace lacks stay empty. */
export function composition(trace: Pick<Trace, "composition">): CompositionView {
  const c = trace.composition ?? EMPTY;
  const scored = (c.candidates ?? []).map((t) => ({
    id: t.id,
    guidelineId: t.guideline_id ?? null,
    score: t.score,
    missingFields: [],
    reason: null,
  }));
  const shown = (c.templates ?? []).map((t) => ({
    id: t.id,
    guidelineId: t.guideline_id ?? null,
    score: t.similarity ?? null,
    missingFields: t.missing_fields ?? [],
    reason: t.reason ?? null,
  }));
  const unqualified = [...(c.disqualified ?? []), ...(c.templates ?? []).filter((t) => !t.qualified)].map((t) => ({
    id: t.id,
    guidelineId: t.guideline_id ?? null,
    score: t.similarity ?? null,
    missingFields: t.missing_fields ?? [],
    reason: t.reason ?? null,
  }));
  const dropped = (c.dropped ?? []).map((t) => ({
    id: t.id ?? `#${t.template}`,
    guidelineId: null,
    score: null,
    missingFields: t.missing_fields ?? [],
    reason: t.reason ?? t.why ?? null,
  }));
  const sent = c.canned_response_ids?.length ? c.canned_response_ids : c.canned_response_id ? [c.canned_response_id] : [];
  return {
    mode: c.mode ?? null,
    modeRule: c.mode_rule || null,
    method: c.method ?? null,
    sent,
    considered: [...scored, ...shown.filter((t) => !unqualified.some((u) => u.id === t.id))],
    disqualified: [...unqualified, ...dropped],
    reason: c.reason ?? c.degraded ?? null,
    preamble: c.preamble?.text ?? null,
    streamed: c.streamed ? { chunks: c.streamed.chunks, ok: c.streamed.ok } : null,
  };
}

export interface ToolCallView {
  toolId: string;
  guidelineId: string | null;
  /** Each argument with where it came from: customer, context, inferred or missing. */
  arguments: { name: string; value: unknown; source: string | null }[];
  missing: string[];
  blocked: string | null;
  result: unknown;
  error: string | null;
  durationMs: number | null;
  timedOut: boolean;
  ran: boolean;
}

type Planned = NonNullable<Composition["tool_plan"]>[number];
type Ran = NonNullable<Composition["tool_calls"]>[number];

/** The turn's tool calls: what was planned (with each argument's source) joined with what ran
 * (results and timings). A planned call that did not run (blocked, missing an argument) stays. */
export function toolCalls(trace: Pick<Trace, "composition">): ToolCallView[] {
  const c = trace.composition ?? EMPTY;
  const ran = c.tool_calls ?? [];
  const used = new Set<number>();
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
  const out: ToolCallView[] = [];
  for (const plan of c.tool_plan ?? []) {
    const i = ran.findIndex((r, k) => !used.has(k) && r.tool_id === plan.tool_id && same(r.arguments, plan.arguments));
    if (i >= 0) used.add(i);
    out.push(view(ran[i], plan));
  }
  ran.forEach((r, k) => {
    if (!used.has(k)) out.push(view(r, null));
  });
  return out;
}

function view(ran: Ran | undefined, plan: Planned | null): ToolCallView {
  const args = (plan ? plan.arguments : ran?.arguments) ?? {};
  const sources: Record<string, string> = plan?.sources ?? {};
  return {
    toolId: ran?.tool_id ?? plan?.tool_id ?? "?",
    guidelineId: plan?.guideline_id ?? null,
    arguments: Object.entries(args).map(([name, value]) => ({ name, value, source: sources[name] ?? null })),
    missing: plan?.missing ?? [],
    blocked: plan?.blocked ?? null,
    result: ran?.result ? ran.result.data : undefined,
    error: ran?.error ?? null,
    durationMs: ran ? (ran.duration_ms ?? null) : null,
    timedOut: ran?.timed_out === true,
    ran: ran !== undefined,
  };
}

/** Totals of the model calls: tokens, cached tokens, latency and cost (null: not known). */
export function modelTotals(calls: Trace["model_calls"]): {
  calls: number;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  latencyMs: number;
  costUsd: number | null;
} {
  const all = calls ?? [];
  const costs = all.filter((c) => c.ok !== false).map((c) => c.cost_usd);
  return {
    calls: all.length,
    promptTokens: all.reduce((s, c) => s + (c.prompt_tokens ?? 0), 0),
    cachedTokens: all.reduce((s, c) => s + (c.cached_tokens ?? 0), 0),
    completionTokens: all.reduce((s, c) => s + (c.completion_tokens ?? 0), 0),
    latencyMs: all.reduce((s, c) => s + (c.latency_ms ?? 0), 0),
    costUsd: costs.length && costs.every((c) => typeof c === "number") ? costs.reduce<number>((s, c) => s + (c as number), 0) : null,
  };
}
