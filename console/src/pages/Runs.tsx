import { useState } from "preact/hooks";
import { api } from "../api.js";
import { Badge, ErrorLine, Loading } from "../components/Status.js";
import { RunState, type Run } from "../gen/podium/v1/run_pb.js";
import { millis, money, shortId, span, when } from "../format.js";
import { useLoad } from "../hooks.js";
import { useRunsFeed } from "../live.js";
import { href } from "../router.js";
import { RUN_STATES, runState } from "../states.js";

const WINDOWS: { label: string; hours: number }[] = [
  { label: "any time", hours: 0 },
  { label: "last hour", hours: 1 },
  { label: "last 24 hours", hours: 24 },
  { label: "last 7 days", hours: 168 },
];

/** Runs, newest first, filtered by workflow, state, label and time, kept live by WatchRuns. */
export function RunsPage() {
  const [workflow, setWorkflow] = useState("");
  const [state, setState] = useState<RunState>(RunState.UNSPECIFIED);
  const [label, setLabel] = useState("");
  const [hours, setHours] = useState(0);
  const labels = parseLabel(label);
  const filterKey = `${workflow}|${state}|${label}`;
  const runs = useLoad(
    () =>
      api.execution.listRuns({
        pageSize: 100,
        workflow: workflow ? `workflows/${workflow}` : "",
        states: state ? [state] : [],
        labels,
      }),
    [filterKey],
  );
  const workflows = useLoad(() => api.workflows.listWorkflows({ pageSize: 100 }), []);
  const [live, setLive] = useState<Record<string, RunState>>({});
  const link = useRunsFeed(
    { workflows: workflow ? [`workflows/${workflow}`] : [] },
    (events) => {
      const known = new Set(runs.data?.runs.map((r) => r.name));
      let unknown = false;
      const changes: Record<string, RunState> = {};
      for (const event of events) {
        if (!known.has(event.run)) unknown = true;
        else if (event.runState) changes[event.run] = event.runState;
      }
      if (Object.keys(changes).length) setLive((old) => ({ ...old, ...changes }));
      if (unknown) runs.reload();
    },
    filterKey,
  );
  const since = hours ? Date.now() - hours * 3600_000 : 0;
  const shown = (runs.data?.runs ?? []).filter((r) => (millis(r.createTime) ?? 0) >= since);

  return (
    <section aria-labelledby="runs-title">
      <div class="title-row">
        <h1 id="runs-title">Runs</h1>
        <span class={`link-state ${link}`} aria-live="polite">
          {link === "live" ? "● live" : link}
        </span>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>
          Workflow
          <select value={workflow} onChange={(e) => setWorkflow((e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            {workflows.data?.workflows.map((w) => (
              <option key={w.name} value={shortId(w.name)}>
                {shortId(w.name)}
              </option>
            ))}
          </select>
        </label>
        <label>
          State
          <select
            value={String(state)}
            onChange={(e) => setState(Number((e.target as HTMLSelectElement).value) as RunState)}
          >
            <option value="0">all</option>
            {RUN_STATES.map((s) => (
              <option key={s} value={String(s)}>
                {runState(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Label
          <input
            value={label}
            placeholder="key=value"
            onChange={(e) => setLabel((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Started
          <select value={String(hours)} onChange={(e) => setHours(Number((e.target as HTMLSelectElement).value))}>
            {WINDOWS.map((w) => (
              <option key={w.hours} value={String(w.hours)}>
                {w.label}
              </option>
            ))}
          </select>
        </label>
      </form>
      <ErrorLine error={runs.error} />
      <Loading when={runs.loading && !runs.data} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Workflow</th>
            <th scope="col">State</th>
            <th scope="col">Created</th>
            <th scope="col">Duration</th>
            <th scope="col">Cost</th>
            <th scope="col">Labels</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((run) => (
            <RunRow key={run.name} run={run} state={live[run.name] ?? run.state} />
          ))}
          {runs.data && shown.length === 0 ? (
            <tr>
              <td colSpan={7} class="muted">
                No runs match. Start one from a workflow's page.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}

function RunRow({ run, state }: { run: Run; state: RunState }) {
  const start = millis(run.startTime);
  const end = millis(run.endTime);
  return (
    <tr>
      <td>
        <a href={href({ page: "run", id: shortId(run.name) })}>{shortId(run.name)}</a>
      </td>
      <td>
        <a href={href({ page: "workflow", id: shortId(run.workflow) })}>{shortId(run.workflow)}</a> v
        {String(run.workflowVersion)}
      </td>
      <td>
        <Badge state={runState(state)}>{runState(state)}</Badge>
      </td>
      <td>{when(run.createTime)}</td>
      <td>{start !== undefined && end !== undefined ? span(end - start) : "—"}</td>
      <td class="num">{money(run.cost)}</td>
      <td>
        {Object.entries(run.labels).map(([k, v]) => (
          <code key={k} class="tag">
            {k}={v}
          </code>
        ))}
      </td>
    </tr>
  );
}

function parseLabel(text: string): Record<string, string> {
  const [key, value] = text.split("=", 2);
  return key && value !== undefined ? { [key.trim()]: value.trim() } : {};
}
