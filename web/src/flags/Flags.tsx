// Flagged replies, newest first: each links to its session and its trace, so that a builder
// can look again and turn it into a test.
import { useState } from "react";
import { api, ApiError } from "../api/client";
import { navigate, paths } from "../router";
import { errorText, useLoad } from "../ui";

export function Flags() {
  const [reload, setReload] = useState(0);
  const flags = useLoad(() => api.flags(), [reload]);
  return (
    <div className="flags-page">
      <h2>Flagged replies</h2>
      {flags.state === "loading" && <p className="muted">Loading…</p>}
      {flags.state === "failed" && (
        <p className="error">
          {flags.error instanceof ApiError && flags.error.status === 404 ? "This server has no flags API (GET /flags)." : errorText(flags.error)}
        </p>
      )}
      {flags.state === "done" &&
        (flags.value.length === 0 ? (
          <p className="muted">No reply is flagged. Flag one from the sandbox, under the reply.</p>
        ) : (
          <ul className="flags" aria-label="Flagged replies">
            {flags.value.map((f) => (
              <li key={f.id} data-flag-id={f.id} data-event-id={f.event_id}>
                <div className="note">{f.note || <span className="muted">(no note)</span>}</div>
                <div className="muted">
                  {new Date(f.creation_utc).toLocaleString()} · session{" "}
                  <a
                    href={paths.session(f.session_id)}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(paths.session(f.session_id));
                    }}
                    className="mono"
                  >
                    {f.session_id}
                  </a>{" "}
                  · event <span className="mono">{f.event_id}</span> ·{" "}
                  <a
                    href={paths.sessionTrace(f.session_id, f.trace_id)}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(paths.sessionTrace(f.session_id, f.trace_id));
                    }}
                  >
                    trace
                  </a>{" "}
                  <button type="button" className="link" onClick={() => api.unflag(f.id).then(() => setReload((n) => n + 1))}>
                    remove
                  </button>
                </div>
              </li>
            ))}
          </ul>
        ))}
    </div>
  );
}
