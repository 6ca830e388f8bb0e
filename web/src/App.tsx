// The shell: navigation, the API key prompt (production mode), and the page of the route.
import { useEffect, useState } from "react";
import { AgentView } from "./agent/AgentView";
import { api, apiKey, onNeedsKey, setApiKey } from "./api/client";
import type { Agent } from "./api/types";
import { Sandbox } from "./chat/Sandbox";
import { Flags } from "./flags/Flags";
import { Inspector } from "./inspector/Inspector";
import { navigate, paths, useRoute } from "./router";
import { errorText } from "./ui";

function Link({ to, children, current }: { to: string; children: string; current: boolean }) {
  return (
    <a
      href={to}
      className={current ? "current" : ""}
      onClick={(e) => {
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}

export function App() {
  const route = useRoute();
  const [needsKey, setNeedsKey] = useState(false);
  const [epoch, setEpoch] = useState(0); // bumps after a key is entered: everything loads again
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [tier, setTier] = useState<string>("");

  useEffect(() => onNeedsKey(() => setNeedsKey(true)), []);
  useEffect(() => {
    setProblem(null);
    api.agents().then(setAgents, (e) => setProblem(errorText(e)));
    fetch("/healthz")
      .then((r) => r.json())
      .then((h: { tier?: string }) => setTier(h.tier ?? ""), () => setTier(""));
  }, [epoch]);

  const agentId = agents?.[0]?.id;
  return (
    <div className="app" key={epoch}>
      <nav className="topbar">
        <span className="brand">tactful</span>
        <Link to={paths.home()} current={route.page === "sandbox"}>
          Sandbox
        </Link>
        {agentId && (
          <Link to={paths.agent(route.page === "agent" ? route.agentId : agentId)} current={route.page === "agent"}>
            Agent
          </Link>
        )}
        <Link to={paths.flags()} current={route.page === "flags"}>
          Flagged
        </Link>
        <span className="spacer" />
        {tier && <span className="badge">{tier}</span>}
        {apiKey() && (
          <button
            type="button"
            className="link"
            onClick={() => {
              setApiKey(null);
              setEpoch((n) => n + 1);
            }}
          >
            forget key
          </button>
        )}
        <a href="/docs" className="muted">
          API
        </a>
      </nav>
      {needsKey && (
        <KeyPrompt
          onKey={(key) => {
            setApiKey(key);
            setNeedsKey(false);
            setEpoch((n) => n + 1);
          }}
        />
      )}
      {problem && !needsKey && <p className="error page-error">{problem}</p>}
      {agents && agents.length === 0 && <p className="page-error">This server has no agent yet: start it with --example or --agent FILE.</p>}
      {agents && agents.length > 0 && <Page route={route} agents={agents} />}
    </div>
  );
}

function Page({ route, agents }: { route: ReturnType<typeof useRoute>; agents: Agent[] }) {
  switch (route.page) {
    case "sandbox":
      return <Sandbox agents={agents} sessionId={route.sessionId} traceId={route.traceId} />;
    case "trace":
      return (
        <div className="page">
          <Inspector traceId={route.traceId} />
        </div>
      );
    case "agent":
      return (
        <div className="page">
          <div className="agent-picker">
            {agents.map((a) => (
              <Link key={a.id} to={paths.agent(a.id)} current={a.id === route.agentId}>
                {a.name}
              </Link>
            ))}
          </div>
          <AgentView agentId={route.agentId} agents={agents} />
        </div>
      );
    case "flags":
      return (
        <div className="page">
          <Flags />
        </div>
      );
  }
}

function KeyPrompt({ onKey }: { onKey: (key: string) => void }) {
  const [key, setKey] = useState("");
  return (
    <div className="modal" role="dialog" aria-label="API key">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (key.trim()) onKey(key.trim());
        }}
      >
        <h3>This server asks for credentials</h3>
        <p>
          It runs in production mode. Paste an API key (<code>tactful keys create --role admin --name me</code> makes one). It
          is kept in this tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.
        </p>
        <input type="password" autoFocus placeholder="tfk_…" aria-label="API key" value={key} onChange={(e) => setKey(e.target.value)} />
        <button type="submit" className="primary">
          Use this key
        </button>
      </form>
    </div>
  );
}
