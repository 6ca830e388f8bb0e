// What the inspector shows of a trace, computed from it. The composition section is read
// defensively: a field the server does not send (an older trace, or a section still untyped)
// leaves its part of the view empty instead of breaking the page.
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

type Data = Record<string, unknown>;
const record = (v: unknown): Data => (v && typeof v === "object" && !Array.isArray(v) ? (v as Data) : {});
const list = (v: unknown): Data[] => (Array.isArray(v) ? v.map(record) : []);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

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

function template(t: Data): TemplateSeen {
  return {
    id: str(t.id) ?? "?",
    guidelineId: str(t.guideline_id),
    score: num(t.score) ?? num(t.similarity),
    missingFields: strings(t.missing_fields),
    reason: str(t.reason),
  };
}

export function composition(trace: Pick<Trace, "composition">): CompositionView {
  const c = record(trace.composition);
  const sent = strings(c.canned_response_ids);
  const single = str(c.canned_response_id);
  const disqualified = [...list(c.disqualified), ...list(c.dropped)].map(template);
  const streamed = record(c.streamed);
  const preamble = record(c.preamble);
  return {
    mode: str(c.mode),
    modeRule: str(c.mode_rule),
    method: str(c.method),
    sent: sent.length ? sent : single ? [single] : [],
    considered: list(c.candidates).map(template),
    disqualified,
    reason: str(c.reason),
    preamble: str(preamble.text) ?? str(preamble.message),
    streamed: "chunks" in streamed ? { chunks: num(streamed.chunks) ?? 0, ok: streamed.ok === true } : null,
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

/** The turn's tool calls: what was planned (with each argument's source) joined with what ran
 * (results and timings). A planned call that did not run (blocked, missing an argument) stays. */
export function toolCalls(trace: Pick<Trace, "composition">): ToolCallView[] {
  const c = record(trace.composition);
  const ran = list(c.tool_calls);
  const used = new Set<number>();
  const out: ToolCallView[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const plan of list(c.tool_plan)) {
    const args = record(plan.arguments);
    const i = ran.findIndex((r, k) => !used.has(k) && r.tool_id === plan.tool_id && same(r.arguments, plan.arguments));
    if (i >= 0) used.add(i);
    out.push(view(ran[i], plan, args));
  }
  ran.forEach((r, k) => {
    if (!used.has(k)) out.push(view(r, null, record(r.arguments)));
  });
  return out;
}

function view(ran: Data | undefined, plan: Data | null, args: Data): ToolCallView {
  const sources = record(plan?.sources);
  const result = record(ran?.result);
  return {
    toolId: str(ran?.tool_id) ?? str(plan?.tool_id) ?? "?",
    guidelineId: str(plan?.guideline_id),
    arguments: Object.entries(args).map(([name, value]) => ({ name, value, source: str(sources[name]) })),
    missing: strings(plan?.missing),
    blocked: str(plan?.blocked),
    result: ran ? ("data" in result ? result.data : ran.result) : undefined,
    error: str(ran?.error),
    durationMs: num(ran?.duration_ms),
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
