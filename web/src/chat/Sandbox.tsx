// The chat sandbox: pick an agent, start a session (as a guest or a named customer), talk,
// resume a past session; the trace inspector opens beside the chat.
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Agent, Session } from "../api/types";
import { Inspector } from "../inspector/Inspector";
import { navigate, paths } from "../router";
import { errorText, Show, useLoad } from "../ui";
import { Chat } from "./Chat";

const AGENT_STORAGE = "tactful.agentId";

export function Sandbox({ agents, sessionId, traceId }: { agents: Agent[]; sessionId: string | null; traceId: string | null }) {
  const session = useLoad(() => (sessionId ? api.session(sessionId) : Promise.resolve(null)), [sessionId]);
  const [chosen, setChosen] = useState<string>(() => localStorage.getItem(AGENT_STORAGE) ?? "");
  const sessionAgent = session.state === "done" ? session.value?.agent_id : undefined;
  const agentId = sessionAgent ?? (agents.some((a) => a.id === chosen) ? chosen : agents[0]?.id ?? "");
  const [listed, setListed] = useState(0); // bumps the session list after a new session

  const choose = (id: string) => {
    localStorage.setItem(AGENT_STORAGE, id);
    setChosen(id);
    if (sessionId) navigate(paths.home());
  };

  return (
    <div className={`sandbox ${traceId ? "with-inspector" : ""}`}>
      <aside className="sidebar">
        <label className="field">
          <span>Agent</span>
          <select value={agentId} onChange={(e) => choose(e.target.value)} aria-label="Agent">
            {agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
        </label>
        {agentId && (
          <NewSession
            agentId={agentId}
            onStarted={(s) => {
              setListed((n) => n + 1);
              navigate(paths.session(s.id));
            }}
          />
        )}
        {agentId && <SessionList agentId={agentId} current={sessionId} refresh={listed} />}
      </aside>
      <main className="chat-column">
        {sessionId ? (
          <Show loaded={session}>
            {(s) =>
              s && (
                <Chat
                  key={s.id}
                  session={s}
                  agent={agents.find((a) => a.id === s.agent_id)}
                  inspecting={traceId}
                />
              )
            }
          </Show>
        ) : (
          <div className="intro">
            <h2>Chat sandbox</h2>
            <p>
              Start a session on the left, as a guest or as a named customer (with metadata and tags,
              for templates with customer fields and customer-specific guidelines), or resume one.
              Under each reply, <b>Inspect</b> opens the turn's trace: why the agent said that.
            </p>
          </div>
        )}
      </main>
      {traceId && sessionId && (
        <aside className="inspector-column">
          <Inspector traceId={traceId} onClose={() => navigate(paths.session(sessionId))} />
        </aside>
      )}
    </div>
  );
}

function parseMetadata(text: string): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) metadata[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return metadata;
}

async function tagIds(names: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const name of names) {
    const found = await api.tagsNamed(name);
    ids.push(found[0]?.id ?? (await api.createTag(name)).id);
  }
  return ids;
}

function NewSession({ agentId, onStarted }: { agentId: string; onStarted: (s: Session) => void }) {
  const [as, setAs] = useState<"guest" | "customer">("guest");
  const [name, setName] = useState("");
  const [metadata, setMetadata] = useState("");
  const [tags, setTags] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);

  const start = async () => {
    setBusy(true);
    setProblem(null);
    try {
      let customerId: string | undefined;
      if (as === "customer") {
        const names = tags.split(",").map((t) => t.trim()).filter(Boolean);
        const customer = await api.createCustomer({ name: name.trim(), metadata: parseMetadata(metadata), tags: await tagIds(names) });
        customerId = customer.id;
      }
      onStarted(await api.createSession(agentId, customerId));
    } catch (e) {
      setProblem(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      className="new-session"
      onSubmit={(e) => {
        e.preventDefault();
        void start();
      }}
    >
      <div className="segmented" role="radiogroup" aria-label="Start as">
        <label>
          <input type="radio" name="as" checked={as === "guest"} onChange={() => setAs("guest")} /> Guest
        </label>
        <label>
          <input type="radio" name="as" checked={as === "customer"} onChange={() => setAs("customer")} /> Customer
        </label>
      </div>
      {as === "customer" && (
        <>
          <input placeholder="Name" aria-label="Customer name" value={name} onChange={(e) => setName(e.target.value)} required />
          <textarea
            placeholder={"Metadata, one key=value a line\ntier=vip"}
            aria-label="Customer metadata"
            rows={2}
            value={metadata}
            onChange={(e) => setMetadata(e.target.value)}
          />
          <input placeholder="Tags, comma-separated" aria-label="Customer tags" value={tags} onChange={(e) => setTags(e.target.value)} />
        </>
      )}
      <button type="submit" className="primary" disabled={busy}>
        New session
      </button>
      {problem && <p className="error">{problem}</p>}
    </form>
  );
}

function SessionList({ agentId, current, refresh }: { agentId: string; current: string | null; refresh: number }) {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const timer = window.setInterval(() => setTick((t) => t + 1), 15000);
    return () => window.clearInterval(timer);
  }, []);
  const sessions = useLoad(() => api.sessions(agentId), [agentId, refresh, current, tick]);
  return (
    <nav className="sessions" aria-label="Sessions">
      <h3>Sessions</h3>
      <Show loaded={sessions}>
        {(list) =>
          list.length === 0 ? (
            <p className="muted">None yet.</p>
          ) : (
            <ul>
              {list.map((s) => (
                <li key={s.id}>
                  <a
                    href={paths.session(s.id)}
                    className={s.id === current ? "current" : ""}
                    data-session-id={s.id}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(paths.session(s.id));
                    }}
                  >
                    <span className="mono">{s.id}</span>
                    <span className="muted">
                      {s.customer_id === "guest" ? "guest" : s.customer_id} · {new Date(s.creation_utc).toLocaleString()}
                    </span>
                  </a>
                </li>
              ))}
            </ul>
          )
        }
      </Show>
    </nav>
  );
}
