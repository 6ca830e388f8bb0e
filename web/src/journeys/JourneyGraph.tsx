// A journey's graph as SVG, with a session's path and its current state highlighted.
import type { JourneyGraph as Graph } from "../api/types";
import { highlight, layout, NODE_H, NODE_W } from "./layout";

const LINE = 22; // characters a line of a state's box holds

/** The label in at most two lines, broken between words. */
function lines(text: string): [string, string] {
  if (text.length <= LINE) return [text, ""];
  const cut = text.lastIndexOf(" ", LINE);
  const at = cut > LINE / 2 ? cut : LINE;
  const rest = text.slice(at).trim();
  return [text.slice(0, at), rest.length > LINE ? `${rest.slice(0, LINE - 1)}…` : rest];
}

export function JourneyGraph({
  graph,
  path = [],
  current = null,
  title,
}: {
  graph: Graph;
  path?: readonly string[];
  current?: string | null;
  title: string;
}) {
  const placed = layout(graph);
  const marks = highlight(graph, path, current);
  const at = new Map(placed.states.map((s) => [s.id, s]));
  return (
    <svg
      className="journey-graph"
      viewBox={`0 0 ${placed.width} ${placed.height}`}
      width={placed.width}
      style={{ maxWidth: "100%", height: "auto" }}
      role="img"
      aria-label={`Journey graph: ${title}`}
    >
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke" />
        </marker>
      </defs>
      {placed.transitions.map((t) => {
        const from = at.get(t.source);
        const to = at.get(t.target);
        if (!from || !to) return null;
        const taken = marks.taken.has(`${t.source}>${t.target}`);
        const x1 = from.x + NODE_W / 2;
        const y1 = from.y + NODE_H;
        const x2 = to.x + NODE_W / 2;
        const y2 = to.y;
        const d = t.back
          ? `M ${from.x + NODE_W} ${from.y + NODE_H / 2} C ${from.x + NODE_W + 34} ${from.y + NODE_H / 2}, ${to.x + NODE_W + 34} ${to.y + NODE_H / 2}, ${to.x + NODE_W} ${to.y + NODE_H / 2}`
          : `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2}`;
        return (
          <path key={t.id} d={d} className={taken ? "edge taken" : "edge"} markerEnd="url(#arrow)" data-transition={t.id}>
            {t.condition && <title>{t.condition}</title>}
          </path>
        );
      })}
      {placed.states.map((s) => {
        const classes = ["state", s.kind, marks.visited.has(s.id) ? "visited" : "", marks.current === s.id ? "current" : ""].join(" ");
        return (
          <g
            key={s.id}
            className={classes}
            transform={`translate(${s.x} ${s.y})`}
            data-state-id={s.id}
            data-current={marks.current === s.id ? "true" : "false"}
          >
            <title>{s.label}</title>
            <rect width={NODE_W} height={NODE_H} rx={s.kind === "fork" ? 2 : 9} />
            {lines(s.label).map((line, i) =>
              line ? (
                <text key={i} x={7} y={lines(s.label)[1] ? 16 + i * 13 : NODE_H / 2 + 4}>
                  {line}
                </text>
              ) : null,
            )}
          </g>
        );
      })}
    </svg>
  );
}
