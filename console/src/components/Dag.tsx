// A workflow's steps as a graph: columns by depth (longest chain of dependencies), edges from
// each dependency; each node is a button colored by its step's state.
import type { Step } from "../gen/podium/v1/workflow_pb.js";

const NODE_W = 150;
const NODE_H = 40;
const COL_GAP = 60;
const ROW_GAP = 16;

export interface DagNode {
  id: string;
  state: string;
  detail?: string;
}

export function layout(steps: Step[]): Map<string, { x: number; y: number }> {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map<string, number>();
  const visit = (id: string, seen: Set<string>): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0; // a cycle is the validator's to report, not the drawing's
    seen.add(id);
    const deps = byId.get(id)?.dependsOn ?? [];
    const d = deps.length ? Math.max(...deps.map((dep) => visit(dep, seen) + 1)) : 0;
    depth.set(id, d);
    return d;
  };
  steps.forEach((s) => visit(s.id, new Set()));
  const rows = new Map<number, number>();
  const where = new Map<string, { x: number; y: number }>();
  for (const step of steps) {
    const col = depth.get(step.id) ?? 0;
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    where.set(step.id, { x: col * (NODE_W + COL_GAP), y: row * (NODE_H + ROW_GAP) });
  }
  return where;
}

export function Dag({
  steps,
  nodes,
  selected,
  onSelect,
}: {
  steps: Step[];
  nodes: Map<string, DagNode>;
  selected?: string;
  onSelect?: (id: string) => void;
}) {
  const where = layout(steps);
  const xs = [...where.values()].map((p) => p.x);
  const ys = [...where.values()].map((p) => p.y);
  const width = (xs.length ? Math.max(...xs) : 0) + NODE_W + 2;
  const height = (ys.length ? Math.max(...ys) : 0) + NODE_H + 2;
  return (
    <div class="dag-frame">
      <svg
        class="dag"
        width={width}
        height={height}
        viewBox={`-1 -1 ${width} ${height}`}
        role="group"
        aria-label="Steps and their dependencies"
      >
        {steps.flatMap((step) =>
          step.dependsOn.map((dep) => {
            const from = where.get(dep);
            const to = where.get(step.id);
            if (!from || !to) return null;
            const x1 = from.x + NODE_W;
            const y1 = from.y + NODE_H / 2;
            const x2 = to.x;
            const y2 = to.y + NODE_H / 2;
            const mid = (x1 + x2) / 2;
            return (
              <path
                key={`${dep}->${step.id}`}
                class="edge"
                d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`}
              />
            );
          }),
        )}
        {steps.map((step) => {
          const p = where.get(step.id)!;
          const node = nodes.get(step.id);
          const state = node?.state ?? "pending";
          return (
            <g
              key={step.id}
              class={`node state-${state.replace(/ /g, "-")}${selected === step.id ? " selected" : ""}`}
              transform={`translate(${p.x},${p.y})`}
              data-step={step.id}
              data-state={state}
              // Lower-case: SVG attributes are case-sensitive, and `tabIndex` is not one.
              tabindex={0}
              role="button"
              aria-label={`${step.id}: ${state}`}
              onClick={() => onSelect?.(step.id)}
              onKeyDown={(e) => {
                if (e.key === "Enter" || e.key === " ") {
                  e.preventDefault();
                  onSelect?.(step.id);
                }
              }}
            >
              <rect width={NODE_W} height={NODE_H} rx={6} />
              <text x={8} y={16} class="node-id">
                {step.id.length > 19 ? `${step.id.slice(0, 18)}…` : step.id}
              </text>
              <text x={8} y={32} class="node-state">
                {node?.detail ?? state}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
