// A journey's graph laid out in layers (top to bottom), and a session's path through it.
// A few dozen lines instead of a graph library: journeys are small, and the bundle stays lean.
import type { JourneyGraph } from "../api/types";

export const NODE_W = 150;
export const NODE_H = 40;
const GAP_X = 14;
const GAP_Y = 30;
const MARGIN = 12;

export interface PlacedState {
  id: string;
  kind: string;
  label: string;
  layer: number;
  x: number;
  y: number;
}

export interface PlacedTransition {
  id: string;
  source: string;
  target: string;
  condition: string | null;
  /** Goes back up (or sideways) in the layout: drawn as a curve. */
  back: boolean;
}

export interface Layout {
  states: PlacedState[];
  transitions: PlacedTransition[];
  width: number;
  height: number;
}

export function stateLabel(state: JourneyGraph["states"][number], index: number): string {
  const kind = state.kind;
  if (kind === "tool") return `${index}: tool ${(state.tools ?? []).join(", ")}`;
  if (kind === "fork") return `${index}: fork`;
  if (kind === "end") return `${index}: end`;
  if (state.sub_journey_id) return `${index}: journey ${state.sub_journey_id}`;
  return state.action ? `${index}: ${state.action}` : `${index}: start`;
}

// Ids are optional in the schema (the server fills them in); a graph read back always has them.
const stateId = (s: JourneyGraph["states"][number], index: number): string => s.id ?? `#${index}`;

/** Layers by distance from the initial state (so that loops point back up); within a layer,
 * states sit under the states that lead to them. */
export function layout(graph: JourneyGraph): Layout {
  const ids = graph.states.map(stateId);
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const t of graph.transitions) out.get(t.source)?.push(t.target);

  const layer = new Map<string, number>([[graph.initial_state_id, 0]]);
  const queue = [graph.initial_state_id];
  while (queue.length) {
    const id = queue.shift() as string;
    for (const next of out.get(id) ?? []) {
      if (!layer.has(next)) {
        layer.set(next, (layer.get(id) ?? 0) + 1);
        queue.push(next);
      }
    }
  }
  const deepest = Math.max(0, ...layer.values());
  for (const id of ids) if (!layer.has(id)) layer.set(id, deepest + 1); // unreachable states

  const layers: string[][] = [];
  for (const id of ids) (layers[layer.get(id) as number] ??= []).push(id);
  layers.forEach((row, depth) => (layers[depth] = row ?? [])); // no holes
  const position = new Map<string, number>();
  layers.forEach((row, depth) => {
    if (depth > 0) {
      // Barycenter of the states above that lead here; the definition order breaks ties.
      const weight = (id: string) => {
        const parents = graph.transitions.filter((t) => t.target === id && (layer.get(t.source) ?? 0) < depth);
        const xs = parents.map((t) => position.get(t.source) ?? 0);
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.MAX_SAFE_INTEGER;
      };
      const order = new Map(row.map((id, i) => [id, i]));
      row.sort((a, b) => weight(a) - weight(b) || (order.get(a) ?? 0) - (order.get(b) ?? 0));
    }
    row.forEach((id, i) => position.set(id, i - (row.length - 1) / 2));
  });

  const widest = Math.max(1, ...layers.map((row) => row?.length ?? 0));
  const inner = widest * NODE_W + (widest - 1) * GAP_X + 2 * MARGIN;
  const center = inner / 2;
  // A gutter on the right for the curves of transitions that loop back up.
  const width = inner + (graph.transitions.length ? 36 : 0);
  const states = graph.states.map((s, index) => {
    const id = stateId(s, index);
    const depth = layer.get(id) as number;
    return {
      id,
      kind: s.kind,
      label: stateLabel(s, index),
      layer: depth,
      x: center + (position.get(id) ?? 0) * (NODE_W + GAP_X) - NODE_W / 2,
      y: MARGIN + depth * (NODE_H + GAP_Y),
    };
  });
  const transitions = graph.transitions.map((t, i) => ({
    id: t.id ?? `t${i}`,
    source: t.source,
    target: t.target,
    condition: t.condition ?? null,
    back: (layer.get(t.target) ?? 0) <= (layer.get(t.source) ?? 0),
  }));
  const layersCount = layers.length;
  return { states, transitions, width, height: layersCount * NODE_H + (layersCount - 1) * GAP_Y + 2 * MARGIN };
}

export interface Highlight {
  current: string | null;
  visited: Set<string>;
  /** Transitions the path took, as "source>target". */
  taken: Set<string>;
}

/** The session's path through the journey: the states it went through, the transitions between
 * consecutive ones that the graph has, and where it stands now. */
export function highlight(graph: JourneyGraph, path: readonly string[], current: string | null): Highlight {
  const edges = new Set(graph.transitions.map((t) => `${t.source}>${t.target}`));
  const taken = new Set<string>();
  for (let i = 1; i < path.length; i++) {
    const edge = `${path[i - 1]}>${path[i]}`;
    if (edges.has(edge)) taken.add(edge);
  }
  const known = new Set(graph.states.map(stateId));
  return {
    current: current && known.has(current) ? current : null,
    visited: new Set(path.filter((id) => known.has(id))),
    taken,
  };
}
