import { describe, expect, it } from "vitest";
import { parseRoute, paths } from "./router";

describe("client routes", () => {
  it("round-trip through their paths, under /ui/", () => {
    expect(parseRoute(paths.home())).toEqual({ page: "sandbox", sessionId: null, traceId: null });
    expect(parseRoute(paths.session("s 1"))).toEqual({ page: "sandbox", sessionId: "s 1", traceId: null });
    expect(parseRoute(paths.sessionTrace("s1", "t1"))).toEqual({ page: "sandbox", sessionId: "s1", traceId: "t1" });
    expect(parseRoute(paths.trace("t1"))).toEqual({ page: "trace", traceId: "t1" });
    expect(parseRoute(paths.agent("voltmart-support"))).toEqual({ page: "agent", agentId: "voltmart-support" });
    expect(parseRoute(paths.flags())).toEqual({ page: "flags" });
    for (const p of Object.values(paths)) expect(p("x", "y") === "/" || p("x", "y").startsWith("/ui/")).toBe(true);
  });
});
