// The app's own routes, under /ui/ so that none shadows an API route (the server answers the
// page for any /ui/ path). History API navigation, no library.
import { useEffect, useState } from "react";

export type Route =
  | { page: "sandbox"; sessionId: string | null; traceId: string | null }
  | { page: "trace"; traceId: string }
  | { page: "agent"; agentId: string }
  | { page: "flags" };

export function parseRoute(pathname: string): Route {
  const parts = pathname.replace(/^\/+|\/+$/g, "").split("/").map(decodeURIComponent);
  if (parts[0] !== "ui") return { page: "sandbox", sessionId: null, traceId: null };
  const [, what, id, sub, subId] = parts;
  if (what === "sessions" && id) {
    return { page: "sandbox", sessionId: id, traceId: sub === "traces" && subId ? subId : null };
  }
  if (what === "traces" && id) return { page: "trace", traceId: id };
  if (what === "agents" && id) return { page: "agent", agentId: id };
  if (what === "flags") return { page: "flags" };
  return { page: "sandbox", sessionId: null, traceId: null };
}

const enc = encodeURIComponent;
export const paths = {
  home: () => "/",
  session: (sessionId: string) => `/ui/sessions/${enc(sessionId)}`,
  sessionTrace: (sessionId: string, traceId: string) =>
    `/ui/sessions/${enc(sessionId)}/traces/${enc(traceId)}`,
  trace: (traceId: string) => `/ui/traces/${enc(traceId)}`,
  agent: (agentId: string) => `/ui/agents/${enc(agentId)}`,
  flags: () => "/ui/flags",
};

export function navigate(path: string): void {
  if (path === window.location.pathname) return;
  window.history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.pathname));
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}
