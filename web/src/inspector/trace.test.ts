import { describe, expect, it } from "vitest";
import { composition, modelTotals, toolCalls, waterfall } from "./trace";

describe("the stage waterfall", () => {
  it("lays the stages end to end, as fractions of the turn", () => {
    const { bars, totalMs } = waterfall({ context: 10, match: 30, compose: 60 });
    expect(totalMs).toBe(100);
    expect(bars.map((b) => [b.stage, b.startMs, b.left, b.width])).toEqual([
      ["context", 0, 0, 0.1],
      ["match", 10, 0.1, 0.3],
      ["compose", 40, 0.4, 0.6],
    ]);
  });

  it("has nothing to draw without timings, and never divides by zero", () => {
    expect(waterfall(undefined)).toEqual({ bars: [], totalMs: 0 });
    expect(waterfall({ match: 0 }).bars[0]).toMatchObject({ left: 0, width: 0 });
  });
});

describe("the composition decision", () => {
  it("names the mode, its rule, the templates considered, the disqualified and the one sent", () => {
    const view = composition({
      composition: {
        mode: "strict_canned",
        mode_rule: "guideline vm-x",
        method: "canned",
        canned_response_ids: ["cr-2"],
        candidates: [{ id: "cr-2", guideline_id: "g1", score: 1.5 }],
        disqualified: [
          { id: "cr-1", guideline_id: "g1", qualified: false, missing_fields: ["std.customer.name"], reason: "missing", similarity: 0.4 },
        ],
      },
    });
    expect(view).toMatchObject({ mode: "strict_canned", modeRule: "guideline vm-x", method: "canned", sent: ["cr-2"] });
    expect(view.considered).toEqual([{ id: "cr-2", guidelineId: "g1", score: 1.5, missingFields: [], reason: null }]);
    expect(view.disqualified[0]).toMatchObject({ id: "cr-1", missingFields: ["std.customer.name"] });
  });

  it("reads the templates a model was shown: the unqualified ones are disqualified", () => {
    const view = composition({
      composition: {
        mode_rule: "agent",
        method: "canned",
        canned_response_ids: ["cr-2"],
        templates: [
          { id: "cr-1", qualified: false, missing_fields: ["std.customer.name"], similarity: 0.9 },
          { id: "cr-2", qualified: true, similarity: 0.7 },
        ],
        dropped: [{ template: 3, id: "cr-3", missing_fields: ["order_id"] }],
      },
    });
    expect(view.considered.map((t) => t.id)).toEqual(["cr-2"]);
    expect(view.disqualified.map((t) => [t.id, t.missingFields])).toEqual([
      ["cr-1", ["std.customer.name"]],
      ["cr-3", ["order_id"]],
    ]);
  });

  it("is empty when the trace has no composition (an older trace)", () => {
    expect(composition({ composition: undefined })).toMatchObject({ mode: null, sent: [], considered: [], disqualified: [] });
  });
});

describe("tool calls", () => {
  it("joins each planned call (argument sources) with the call that ran (result, timing)", () => {
    const calls = toolCalls({
      composition: {
        mode_rule: "agent",
        tool_plan: [
          { guideline_id: "g1", tool_id: "shop:order_status", arguments: { order_id: "VM1" }, sources: { order_id: "customer" }, missing: [] },
          { guideline_id: "g2", tool_id: "shop:refund", arguments: {}, sources: {}, missing: ["order_id"], blocked: "missing order_id" },
        ],
        tool_calls: [
          {
            tool_id: "shop:order_status",
            arguments: { order_id: "VM1" },
            result: { data: { ok: true }, control: "none" },
            error: null,
            started: "2026-01-01T00:00:00Z",
            ended: "2026-01-01T00:00:00.0025Z",
            duration_ms: 2.5,
            timed_out: false,
          },
        ],
      },
    });
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({
      toolId: "shop:order_status",
      guidelineId: "g1",
      arguments: [{ name: "order_id", value: "VM1", source: "customer" }],
      result: { ok: true },
      durationMs: 2.5,
      ran: true,
    });
    expect(calls[1]).toMatchObject({ toolId: "shop:refund", ran: false, missing: ["order_id"], blocked: "missing order_id" });
  });
});

describe("model call totals", () => {
  it("sums tokens and latency; the cost is unknown when a call has no price", () => {
    const call = { stage: "match", model: "m", provider: "openai", prompt_tokens: 100, completion_tokens: 10, cached_tokens: 40, latency_ms: 200, ok: true, cost_usd: 0.001 };
    expect(modelTotals([call, { ...call, stage: "compose" }])).toMatchObject({
      calls: 2,
      promptTokens: 200,
      cachedTokens: 80,
      latencyMs: 400,
      costUsd: 0.002,
    });
    expect(modelTotals([call, { ...call, cost_usd: null }]).costUsd).toBeNull();
    expect(modelTotals(undefined).calls).toBe(0);
  });
});
