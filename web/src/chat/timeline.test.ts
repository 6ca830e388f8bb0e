import { describe, expect, it } from "vitest";
import type { Event } from "../api/types";
import { emptyTimeline, fold, items, liveStatus, resumeOffset } from "./timeline";

let n = 0;
function event(partial: Partial<Event> & Pick<Event, "kind" | "source" | "offset">): Event {
  n += 1;
  return {
    id: `e${n}`,
    creation_utc: "2026-01-01T00:00:00Z",
    trace_id: "t1",
    correlation_id: "t1",
    data: null,
    metadata: {},
    deleted: false,
    ...partial,
  };
}

const customer = (offset: number, message: string) =>
  event({ kind: "message", source: "customer", offset, data: { message } });
const status = (offset: number, s: string, data: object = {}) =>
  event({ kind: "status", source: "ai_agent", offset, data: { status: s, data } });

describe("folding events into the chat timeline", () => {
  it("grows a streamed reply in place, and never shrinks it", () => {
    const reply = { kind: "message" as const, source: "ai_agent" as const, offset: 3, id: "r1" };
    let t = fold(emptyTimeline, [customer(0, "refund?"), status(1, "acknowledged")]);
    t = fold(t, [event({ ...reply, data: { message: "Refunds", chunks: ["Refunds"] } })]);
    expect(items(t).map((i) => i.kind)).toEqual(["message", "message"]);
    t = fold(t, [event({ ...reply, data: { message: "Refunds take", chunks: ["Refunds", " take"] } })]);
    // A late, shorter state of the same event changes nothing.
    t = fold(t, [event({ ...reply, data: { message: "Refunds", chunks: ["Refunds"] } })]);
    let shown = items(t);
    expect(shown).toHaveLength(2);
    expect(shown[1]).toMatchObject({ id: "r1", text: "Refunds take", streaming: true, pieces: 2 });

    t = fold(t, [event({ ...reply, data: { message: "Refunds take 5 days.", chunks: ["Refunds", " take", " 5 days.", null] } })]);
    shown = items(t);
    expect(shown[1]).toMatchObject({ text: "Refunds take 5 days.", streaming: false });
  });

  it("reads again from a message that is still growing", () => {
    const growing = event({ kind: "message", source: "ai_agent", offset: 2, data: { chunks: ["Hi"] } });
    const t = fold(emptyTimeline, [customer(0, "hi"), status(1, "typing"), growing, status(3, "processing")]);
    expect(resumeOffset(t)).toBe(2);
    const done = fold(t, [{ ...growing, data: { chunks: ["Hi", null] } }]);
    expect(resumeOffset(done)).toBe(4);
    expect(resumeOffset(emptyTimeline)).toBe(0);
  });

  it("shows preambles, tool calls, custom events and failed turns; statuses drive the indicator", () => {
    const t = fold(emptyTimeline, [
      customer(0, "where is VM10234567?"),
      status(1, "acknowledged"),
      status(2, "processing", { stage: "interpreting" }),
      event({ kind: "message", source: "ai_agent", offset: 3, data: { message: "One moment" }, metadata: { preamble: true } }),
      event({
        kind: "tool",
        source: "ai_agent",
        offset: 4,
        data: { tool_calls: [{ tool_id: "shop:order_status", arguments: { order_id: "VM10234567" }, result: { data: { ok: true } }, error: null }] },
      }),
      event({ kind: "custom", source: "customer_ui", offset: 5, data: { clicked: "buy" } }),
    ]);
    const shown = items(t);
    expect(shown.map((i) => i.kind)).toEqual(["message", "message", "tool", "custom"]);
    expect(shown[1]).toMatchObject({ preamble: true, text: "One moment", from: "agent" });
    expect(shown[2]).toMatchObject({ calls: [{ toolId: "shop:order_status", arguments: { order_id: "VM10234567" }, result: { ok: true } }] });
    expect(liveStatus(t)).toEqual({ status: "processing", stage: "interpreting" });

    const failed = fold(t, [status(6, "error", { exception: "boom" })]);
    expect(items(failed).at(-1)).toMatchObject({ kind: "problem", status: "error", detail: "boom" });
    expect(liveStatus(failed)).toBeNull();
  });

  it("drops deleted events and is idempotent", () => {
    const first = customer(0, "hello");
    const t = fold(fold(emptyTimeline, [first]), [first]);
    expect(items(t)).toHaveLength(1);
    expect(items(fold(t, [{ ...first, deleted: true }]))).toHaveLength(0);
  });
});
