// A session's timeline as the sandbox shows it, folded from the events the server sends.
// Pure functions: the same events in any order, any number of times, give the same timeline.
import type { Event } from "../api/types";

/** Every event seen, by id; a streamed message seen again replaces its earlier state. */
export interface Timeline {
  readonly events: ReadonlyMap<string, Event>;
}

export const emptyTimeline: Timeline = { events: new Map() };

type Data = Record<string, unknown>;
const dataOf = (e: Event): Data =>
  e.data && typeof e.data === "object" && !Array.isArray(e.data) ? (e.data as Data) : {};

/** Pieces a streamed message has so far (its last is null once it is complete), or null. */
export function chunksOf(e: Event): (string | null)[] | null {
  const chunks = dataOf(e).chunks;
  return Array.isArray(chunks) ? (chunks as (string | null)[]) : null;
}

/** A message whose chunks do not end with null yet: it is still growing. */
export function isStreaming(e: Event): boolean {
  const chunks = chunksOf(e);
  return e.kind === "message" && chunks !== null && (chunks.length === 0 || chunks[chunks.length - 1] !== null);
}

/** A message's text: its pieces so far when streamed, else its message. */
export function messageText(e: Event): string {
  const chunks = chunksOf(e);
  if (chunks !== null) return chunks.filter((c): c is string => typeof c === "string").join("");
  const message = dataOf(e).message;
  return typeof message === "string" ? message : "";
}

const growth = (e: Event): number => chunksOf(e)?.length ?? 0;

/** The timeline with `incoming` folded in. A message never shrinks: an older state of a
 * streamed message arriving late is ignored. Deleted events leave the timeline. */
export function fold(timeline: Timeline, incoming: readonly Event[]): Timeline {
  let events: Map<string, Event> | null = null;
  for (const event of incoming) {
    const known = (events ?? timeline.events).get(event.id);
    if (known && growth(known) > growth(event)) continue;
    events ??= new Map(timeline.events);
    if (event.deleted) events.delete(event.id);
    else events.set(event.id, event);
  }
  return events ? { events } : timeline;
}

export function ordered(timeline: Timeline): Event[] {
  return [...timeline.events.values()].sort((a, b) => a.offset - b.offset);
}

/** Where to read from next: after the last event, or from the first message still growing
 * (so that its next pieces come again). */
export function resumeOffset(timeline: Timeline): number {
  const events = ordered(timeline);
  const growing = events.find(isStreaming);
  if (growing) return growing.offset;
  const last = events[events.length - 1];
  return last ? last.offset + 1 : 0;
}

export type Item =
  | {
      kind: "message";
      id: string;
      offset: number;
      from: "customer" | "agent" | "human";
      author: string;
      text: string;
      streaming: boolean;
      /** How many pieces it has so far (streamed messages). */
      pieces: number;
      preamble: boolean;
      traceId: string;
    }
  | { kind: "tool"; id: string; offset: number; calls: ToolCallSeen[]; traceId: string }
  | { kind: "custom"; id: string; offset: number; source: string; data: unknown }
  | { kind: "problem"; id: string; offset: number; status: "error" | "cancelled"; detail: string };

export interface ToolCallSeen {
  toolId: string;
  arguments: Record<string, unknown>;
  result: unknown;
  error: string | null;
}

function author(e: Event): string {
  const participant = dataOf(e).participant;
  if (participant && typeof participant === "object") {
    const name = (participant as Data).display_name;
    if (typeof name === "string" && name) return name;
  }
  return e.source === "customer" || e.source === "customer_ui" ? "Customer" : "Agent";
}

function toolCalls(e: Event): ToolCallSeen[] {
  const calls = dataOf(e).tool_calls;
  if (!Array.isArray(calls)) return [];
  return calls.map((c: Data) => ({
    toolId: String(c.tool_id ?? "?"),
    arguments: c.arguments && typeof c.arguments === "object" ? (c.arguments as Record<string, unknown>) : {},
    result: c.result && typeof c.result === "object" ? ((c.result as Data).data ?? c.result) : c.result,
    error: typeof c.error === "string" ? c.error : null,
  }));
}

/** What the sandbox lists: messages, tool calls, custom events and turns that failed or were
 * cancelled. Status events otherwise only drive the live indicator (`liveStatus`). */
export function items(timeline: Timeline): Item[] {
  const out: Item[] = [];
  for (const e of ordered(timeline)) {
    const data = dataOf(e);
    if (e.kind === "message") {
      const from = e.source === "customer" || e.source === "customer_ui" ? "customer" : e.source === "ai_agent" ? "agent" : "human";
      out.push({
        kind: "message",
        id: e.id,
        offset: e.offset,
        from,
        author: author(e),
        text: messageText(e),
        streaming: isStreaming(e),
        pieces: growth(e),
        preamble: e.metadata?.preamble === true,
        traceId: e.trace_id,
      });
    } else if (e.kind === "tool") {
      out.push({ kind: "tool", id: e.id, offset: e.offset, calls: toolCalls(e), traceId: e.trace_id });
    } else if (e.kind === "custom") {
      out.push({ kind: "custom", id: e.id, offset: e.offset, source: e.source, data: e.data });
    } else if (e.kind === "status" && (data.status === "error" || data.status === "cancelled")) {
      const inner = data.data && typeof data.data === "object" ? (data.data as Data) : {};
      const detail = typeof inner.exception === "string" ? inner.exception : data.status === "cancelled" ? "a newer message superseded this turn" : "";
      out.push({ kind: "problem", id: e.id, offset: e.offset, status: data.status, detail });
    }
  }
  return out;
}

export type LiveStatus = "acknowledged" | "processing" | "typing";

/** What the agent is doing now: the latest turn's last status, while it is one of
 * acknowledged, processing or typing (and its stage, when the server says which). */
export function liveStatus(timeline: Timeline): { status: LiveStatus; stage: string | null } | null {
  const statuses = ordered(timeline).filter((e) => e.kind === "status");
  const last = statuses[statuses.length - 1];
  if (!last) return null;
  const data = dataOf(last);
  const status = data.status;
  if (status !== "acknowledged" && status !== "processing" && status !== "typing") return null;
  const inner = data.data && typeof data.data === "object" ? (data.data as Data) : {};
  return { status, stage: typeof inner.stage === "string" ? inner.stage : null };
}
