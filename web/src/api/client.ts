// The REST API of the server that served this page (same origin), with the caller's credentials.
// Development mode needs none; in production mode the app asks for an API key, keeps it in
// sessionStorage (gone when the tab closes) and sends it as a bearer token.
import type {
  Agent,
  CannedResponse,
  ContextVariable,
  Customer,
  Event,
  Flag,
  GuidelineDetail,
  Guideline,
  Journey,
  JourneyGraph,
  JourneyRun,
  Relationship,
  Service,
  Session,
  SessionListing,
  Tag,
  Term,
  Trace,
} from "./types";

const KEY_STORAGE = "tactful.apiKey";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
  }
}

type Listener = () => void;
const needsKeyListeners = new Set<Listener>();

/** Called when the server asks for credentials (401): the app then asks for a key. */
export function onNeedsKey(listener: Listener): () => void {
  needsKeyListeners.add(listener);
  return () => needsKeyListeners.delete(listener);
}

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setApiKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function headers(body: boolean): Record<string, string> {
  const h: Record<string, string> = { accept: "application/json" };
  if (body) h["content-type"] = "application/json";
  const key = apiKey();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function detailOf(body: unknown): string {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => (d && typeof d === "object" && "msg" in d ? String(d.msg) : "")).join("; ");
    }
  }
  return "";
}

export async function request<T>(
  method: string,
  path: string,
  options: { body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: headers(options.body !== undefined),
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  const parsed: unknown = text ? safeJson(text) : undefined;
  if (!response.ok) {
    if (response.status === 401) needsKeyListeners.forEach((l) => l());
    throw new ApiError(response.status, detailOf(parsed) || response.statusText);
  }
  return parsed as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const q = (params: Record<string, string | number | boolean | undefined>): string => {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) search.set(k, String(v));
  const s = search.toString();
  return s ? `?${s}` : "";
};
const id = encodeURIComponent;
const agentTag = (agentId: string) => `agent:${agentId}`;

export const api = {
  agents: () => request<Agent[]>("GET", "/agents"),
  agent: (agentId: string) => request<Agent>("GET", `/agents/${id(agentId)}`),

  tags: () => request<Tag[]>("GET", "/tags"),
  tagsNamed: (name: string) => request<Tag[]>("GET", `/tags${q({ name })}`),
  createTag: (name: string) => request<Tag>("POST", "/tags", { body: { name } }),
  customer: (customerId: string) => request<Customer>("GET", `/customers/${id(customerId)}`),
  createCustomer: (body: { name: string; metadata: Record<string, string>; tags: string[] }) =>
    request<Customer>("POST", "/customers", { body }),

  sessions: async (agentId: string): Promise<Session[]> => {
    const page = await request<SessionListing>(
      "GET",
      `/sessions${q({ agent_id: agentId, sort: "desc", limit: 50 })}`,
    );
    return page.items;
  },
  session: (sessionId: string) => request<Session>("GET", `/sessions/${id(sessionId)}`),
  createSession: (agentId: string, customerId?: string) =>
    request<Session>("POST", "/sessions", {
      body: customerId ? { agent_id: agentId, customer_id: customerId } : { agent_id: agentId },
    }),
  events: (sessionId: string, minOffset: number, signal?: AbortSignal) =>
    request<Event[]>(
      "GET",
      `/sessions/${id(sessionId)}/events${q({ min_offset: minOffset, wait_for_data: 0, limit: 1000 })}`,
      { signal },
    ),
  say: (sessionId: string, message: string) =>
    request<Event>("POST", `/sessions/${id(sessionId)}/events`, {
      body: { kind: "message", source: "customer", message },
    }),
  postCustom: (sessionId: string, data: unknown) =>
    request<Event>("POST", `/sessions/${id(sessionId)}/events`, {
      body: { kind: "custom", source: "customer_ui", data },
    }),
  sessionJourneys: (sessionId: string) =>
    request<JourneyRun[]>("GET", `/sessions/${id(sessionId)}/journeys`),

  trace: (traceId: string) => request<Trace>("GET", `/traces/${id(traceId)}`),

  guidelines: (agentId: string) =>
    request<Guideline[]>("GET", `/guidelines${q({ tag_id: agentTag(agentId) })}`),
  guideline: (guidelineId: string) =>
    request<GuidelineDetail>("GET", `/guidelines/${id(guidelineId)}`),
  relationships: () => request<Relationship[]>("GET", "/relationships"),
  journeys: (agentId: string) =>
    request<Journey[]>("GET", `/journeys${q({ tag_id: agentTag(agentId) })}`),
  journeyGraph: (journeyId: string) =>
    request<JourneyGraph>("GET", `/journeys/${id(journeyId)}/graph`),
  cannedResponses: (agentId: string) =>
    request<CannedResponse[]>("GET", `/canned_responses${q({ tags: agentTag(agentId) })}`),
  terms: (agentId: string) => request<Term[]>("GET", `/terms${q({ tag_id: agentTag(agentId) })}`),
  variables: (agentId: string) =>
    request<ContextVariable[]>("GET", `/context-variables${q({ tag_id: agentTag(agentId) })}`),
  services: () => request<Service[]>("GET", "/services"),

  flags: (sessionId?: string) => request<Flag[]>("GET", `/flags${q({ session_id: sessionId })}`),
  flag: (body: { session_id: string; event_id: string; note: string }) =>
    request<Flag>("POST", "/flags", { body }),
  unflag: (flagId: string) => request<void>("DELETE", `/flags/${id(flagId)}`),
};

/**
 * Follows a session's timeline as Server-Sent Events (read with fetch, so that the bearer token
 * goes along): each event as it is appended, and a streamed message again each time it grows.
 * The server closes the stream after `waitS` quiet seconds; the caller reconnects.
 */
export async function streamEvents(
  sessionId: string,
  minOffset: number,
  onEvent: (event: Event) => void,
  signal: AbortSignal,
  waitS = 30,
): Promise<void> {
  const url = `/sessions/${id(sessionId)}/events${q({ min_offset: minOffset, sse: true, wait_for_data: waitS })}`;
  const response = await fetch(url, { headers: headers(false), signal });
  if (!response.ok || !response.body) {
    if (response.status === 401) needsKeyListeners.forEach((l) => l());
    const text = await response.text();
    throw new ApiError(response.status, detailOf(safeJson(text)) || response.statusText);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) onEvent(JSON.parse(data) as Event);
    }
  }
}
