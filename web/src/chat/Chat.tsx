// One session's conversation: its timeline followed live (statuses, preambles, streamed replies
// growing in place, tool calls, custom events), a composer, and per reply: inspect or flag.
import { useEffect, useRef, useState } from "react";
import { api, ApiError, streamEvents } from "../api/client";
import type { Agent, Customer, Flag, Session } from "../api/types";
import { navigate, paths } from "../router";
import { errorText } from "../ui";
import { emptyTimeline, fold, items, liveStatus, resumeOffset, type Item, type Timeline } from "./timeline";

const STATUS_TEXT = { acknowledged: "acknowledged", processing: "thinking", typing: "typing" } as const;

function useTimeline(sessionId: string): { timeline: Timeline; problem: string | null } {
  const [timeline, setTimeline] = useState<Timeline>(emptyTimeline);
  const [problem, setProblem] = useState<string | null>(null);
  const latest = useRef(timeline);
  latest.current = timeline;

  useEffect(() => {
    const abort = new AbortController();
    const update = (t: Timeline) => {
      latest.current = t;
      setTimeline(t);
    };
    (async () => {
      update(fold(emptyTimeline, await api.events(sessionId, 0, abort.signal)));
      while (!abort.signal.aborted) {
        try {
          await streamEvents(sessionId, resumeOffset(latest.current), (e) => update(fold(latest.current, [e])), abort.signal);
          setProblem(null);
        } catch (e) {
          if (abort.signal.aborted) return;
          setProblem(errorText(e));
          if (e instanceof ApiError && (e.status === 401 || e.status === 404)) return;
          await new Promise((r) => setTimeout(r, 1500));
        }
      }
    })().catch((e) => abort.signal.aborted || setProblem(errorText(e)));
    return () => abort.abort();
  }, [sessionId]);
  return { timeline, problem };
}

export function Chat({ session, agent, inspecting }: { session: Session; agent: Agent | undefined; inspecting: string | null }) {
  const { timeline, problem } = useTimeline(session.id);
  const [customer, setCustomer] = useState<Customer | null>(null);
  const [flags, setFlags] = useState<Flag[] | null>(null);
  const [flagsMissing, setFlagsMissing] = useState<string | null>(null);
  const bottom = useRef<HTMLDivElement>(null);
  const shown = items(timeline);
  const live = liveStatus(timeline);
  const lastText = shown.length ? JSON.stringify(shown[shown.length - 1]).length : 0;

  useEffect(() => {
    // The customer with its tags' names (a customer refers to tags by id).
    Promise.all([api.customer(session.customer_id), api.tags()]).then(
      ([c, tags]) => setCustomer({ ...c, tags: c.tags.map((id) => tags.find((t) => t.id === id)?.name ?? id) }),
      () => setCustomer(null),
    );
  }, [session.customer_id]);
  const loadFlags = () =>
    api.flags(session.id).then(
      (f) => {
        setFlags(f);
        setFlagsMissing(null);
      },
      (e) => setFlagsMissing(e instanceof ApiError && (e.status === 404 || e.status === 405) ? "this server has no flags API" : errorText(e)),
    );
  useEffect(() => {
    void loadFlags();
  }, [session.id]);
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [shown.length, lastText, live?.status]);

  const agentName = agent?.name ?? "Agent";
  return (
    <div className="chat" data-session-id={session.id}>
      <header className="chat-header">
        <div>
          <h2>{agentName}</h2>
          <span className="muted">
            session <span className="mono">{session.id}</span> · {customer ? customerLine(customer) : session.customer_id}
            {agent?.message_output_mode === "stream" && " · streamed replies"}
          </span>
        </div>
      </header>
      <ol className="timeline" aria-label="Conversation">
        {shown.map((item) => (
          <TimelineItem
            key={item.id}
            item={item}
            session={session}
            inspecting={inspecting}
            flag={flags?.find((f) => f.event_id === item.id) ?? null}
            flagsMissing={flagsMissing}
            onFlagged={() => void loadFlags()}
          />
        ))}
        {live && (
          <li className="live-status" data-status={live.status} aria-live="polite">
            <span className="dots" aria-hidden="true">
              <i />
              <i />
              <i />
            </span>
            {agentName} is {STATUS_TEXT[live.status]}
            {live.stage && live.status === "processing" ? ` (${live.stage})` : ""}…
          </li>
        )}
      </ol>
      <div ref={bottom} />
      {problem && <p className="error">Following the timeline: {problem}</p>}
      <Composer sessionId={session.id} />
    </div>
  );
}

function customerLine(c: Customer): string {
  const meta = Object.entries(c.metadata ?? {}).map(([k, v]) => `${k}=${v}`);
  const tags = c.tags?.length ? [`tags: ${c.tags.join(", ")}`] : [];
  return [c.id === "guest" ? "guest" : c.name, ...meta, ...tags].join(" · ");
}

function TimelineItem({
  item,
  session,
  inspecting,
  flag,
  flagsMissing,
  onFlagged,
}: {
  item: Item;
  session: Session;
  inspecting: string | null;
  flag: Flag | null;
  flagsMissing: string | null;
  onFlagged: () => void;
}) {
  if (item.kind === "tool") {
    return (
      <li className="event tool" data-kind="tool" data-event-id={item.id}>
        {item.calls.map((c, i) => (
          <div key={i} className="tool-line">
            <span className="badge">tool</span> <span className="mono">{c.toolId}</span>(
            {Object.entries(c.arguments)
              .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
              .join(", ")}
            ){c.error ? <span className="error"> failed: {c.error}</span> : null}
          </div>
        ))}
      </li>
    );
  }
  if (item.kind === "custom") {
    return (
      <li className="event custom" data-kind="custom" data-event-id={item.id}>
        <span className="badge">custom · {item.source}</span> <code>{JSON.stringify(item.data)}</code>
      </li>
    );
  }
  if (item.kind === "problem") {
    return (
      <li className="event problem" data-kind={item.status} data-event-id={item.id}>
        <span className="badge">{item.status}</span> {item.detail}
      </li>
    );
  }
  const classes = ["message", item.from, item.preamble ? "preamble" : "", item.streaming ? "streaming" : ""].join(" ");
  return (
    <li
      className={classes}
      data-kind="message"
      data-from={item.from}
      data-event-id={item.id}
      data-trace-id={item.traceId}
      data-streaming={item.streaming ? "true" : "false"}
      data-pieces={item.pieces}
      data-preamble={item.preamble ? "true" : "false"}
    >
      <div className="author">
        {item.author}
        {item.preamble && <span className="badge">preamble</span>}
      </div>
      <div className="bubble">
        <span className="text">{item.text}</span>
        {item.streaming && <span className="caret" aria-hidden="true" />}
      </div>
      {item.from === "agent" && !item.streaming && (
        <div className="actions">
          <button
            type="button"
            className={inspecting === item.traceId ? "link active" : "link"}
            onClick={() => navigate(paths.sessionTrace(session.id, item.traceId))}
          >
            Inspect
          </button>
          <FlagControl sessionId={session.id} eventId={item.id} flag={flag} missing={flagsMissing} onFlagged={onFlagged} />
        </div>
      )}
    </li>
  );
}

function FlagControl({
  sessionId,
  eventId,
  flag,
  missing,
  onFlagged,
}: {
  sessionId: string;
  eventId: string;
  flag: Flag | null;
  missing: string | null;
  onFlagged: () => void;
}) {
  const [open, setOpen] = useState(false);
  const [note, setNote] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  if (flag) {
    return (
      <span className="flagged" title={flag.note} data-flag-id={flag.id}>
        ⚑ flagged{flag.note ? `: ${flag.note}` : ""}
      </span>
    );
  }
  if (!open) {
    return (
      <button type="button" className="link" disabled={missing !== null} title={missing ?? "Flag this reply with a note"} onClick={() => setOpen(true)}>
        Flag
      </button>
    );
  }
  return (
    <form
      className="flag-form"
      onSubmit={(e) => {
        e.preventDefault();
        api.flag({ session_id: sessionId, event_id: eventId, note }).then(
          () => {
            setOpen(false);
            onFlagged();
          },
          (err) => setProblem(errorText(err)),
        );
      }}
    >
      <input autoFocus placeholder="What is wrong with this reply?" aria-label="Flag note" value={note} onChange={(e) => setNote(e.target.value)} />
      <button type="submit">Save flag</button>
      <button type="button" className="link" onClick={() => setOpen(false)}>
        Cancel
      </button>
      {problem && <span className="error">{problem}</span>}
    </form>
  );
}

function Composer({ sessionId }: { sessionId: string }) {
  const [text, setText] = useState("");
  const [custom, setCustom] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const send = async () => {
    const message = text.trim();
    if (!message) return;
    setProblem(null);
    try {
      if (custom) {
        let data: unknown;
        try {
          data = JSON.parse(message);
        } catch {
          data = { text: message };
        }
        await api.postCustom(sessionId, data);
      } else {
        await api.say(sessionId, message);
      }
      setText("");
    } catch (e) {
      setProblem(errorText(e));
    }
  };
  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      <input
        value={text}
        onChange={(e) => setText(e.target.value)}
        placeholder={custom ? 'A custom event: JSON, e.g. {"clicked": "track order"}' : "Type a message"}
        aria-label="Message"
        autoFocus
      />
      <label className="custom-toggle" title="Post a custom event from the customer's UI instead of a message">
        <input type="checkbox" checked={custom} onChange={(e) => setCustom(e.target.checked)} /> custom event
      </label>
      <button type="submit" className="primary">
        Send
      </button>
      {problem && <p className="error">{problem}</p>}
    </form>
  );
}
