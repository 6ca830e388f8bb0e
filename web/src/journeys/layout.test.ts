import { describe, expect, it } from "vitest";
import type { JourneyGraph } from "../api/types";
import { highlight, layout, NODE_H, NODE_W } from "./layout";

const state = (id: string, kind: JourneyGraph["states"][number]["kind"], action: string | null = null) => ({
  id,
  kind,
  action,
  tools: kind === "tool" ? ["shop:order_status"] : [],
  composition_mode: null,
  sub_journey_id: null,
  canned_responses: [],
});

// start -> ask -> look (tool) -> fork -> {missing, ok}; missing -> look (a loop back up).
const graph: JourneyGraph = {
  initial_state_id: "start",
  states: [
    state("start", "chat"),
    state("ask", "chat", "Ask for the order number"),
    state("look", "tool"),
    state("fork", "fork"),
    state("missing", "chat", "Say it was not found"),
    state("ok", "chat", "Ask why"),
  ],
  transitions: [
    { id: "t1", source: "start", target: "ask" },
    { id: "t2", source: "ask", target: "look", condition: "gave the number" },
    { id: "t3", source: "look", target: "fork" },
    { id: "t4", source: "fork", target: "missing", condition: "not found" },
    { id: "t5", source: "fork", target: "ok", condition: "delivered" },
    { id: "t6", source: "missing", target: "look", condition: "gave the number" },
  ],
};

describe("laying out a journey", () => {
  it("puts states in layers by distance from the start, loops pointing back up", () => {
    const { states, transitions, width, height } = layout(graph);
    const at = Object.fromEntries(states.map((s) => [s.id, s]));
    expect(["start", "ask", "look", "fork", "missing", "ok"].map((id) => at[id]?.layer)).toEqual([0, 1, 2, 3, 4, 4]);
    // Siblings side by side, never overlapping; the graph fits in its box.
    expect(at.missing?.y).toBe(at.ok?.y);
    expect(Math.abs((at.missing?.x ?? 0) - (at.ok?.x ?? 0))).toBeGreaterThanOrEqual(NODE_W);
    for (const s of states) {
      expect(s.x).toBeGreaterThanOrEqual(0);
      expect(s.x + NODE_W).toBeLessThanOrEqual(width);
      expect(s.y + NODE_H).toBeLessThanOrEqual(height);
    }
    expect(transitions.filter((t) => t.back).map((t) => t.id)).toEqual(["t6"]);
    expect(at.look?.label).toBe("2: tool shop:order_status");
  });
});

describe("a session's path through it", () => {
  it("marks the states visited, the transitions taken and the current state", () => {
    const h = highlight(graph, ["start", "ask", "look", "fork", "ok"], "ok");
    expect(h.current).toBe("ok");
    expect([...h.visited]).toEqual(["start", "ask", "look", "fork", "ok"]);
    expect([...h.taken]).toEqual(["start>ask", "ask>look", "look>fork", "fork>ok"]);
    expect(h.taken.has("fork>missing")).toBe(false);
  });

  it("ignores states the graph does not have (it changed since)", () => {
    const h = highlight(graph, ["start", "gone", "ask"], "gone");
    expect(h.current).toBeNull();
    expect([...h.visited]).toEqual(["start", "ask"]);
    expect(h.taken.size).toBe(0);
  });
});
