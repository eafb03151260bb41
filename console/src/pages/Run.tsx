import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { Dag, type DagNode } from "../components/Dag.js";
import { RunActionBar } from "../components/RunActions.js";
import { Badge, ErrorLine, Loading } from "../components/Status.js";
import { Timeline } from "../components/Timeline.js";
import { RunEventType, type RunEvent } from "../gen/podium/v1/event_pb.js";
import { StepState, type Run, type StepRun } from "../gen/podium/v1/run_pb.js";
import { millis, money, shortId, span, tokens, when } from "../format.js";
import { useLoad } from "../hooks.js";
import { useRunEvents } from "../live.js";
import { href } from "../router.js";
import { eventType, FINISHED_RUN, runState, stepState } from "../states.js";

// Re-read the run (attempts, usage, cost) at most this often while events arrive.
const REFRESH_MS = 250;

export function RunPage({ id }: { id: string }) {
  const name = `runs/${id}`;
  const run = useLoad(() => api.execution.getRun({ name }).then((r) => r.run), [name]);
  const live = useRunEvents(name);
  const workflow = useLoad(
    async () =>
      run.data
        ? (await api.workflows.getWorkflow({ name: run.data.workflow, version: run.data.workflowVersion })).workflow
        : undefined,
    [run.data?.workflow, String(run.data?.workflowVersion ?? "")],
  );
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [now, setNow] = useState(Date.now());

  // Each batch of events re-reads the run soon after, so that attempts and cost follow.
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => {
    if (live.events.length === 0) return;
    if (timer.current === undefined) {
      timer.current = window.setTimeout(() => {
        timer.current = undefined;
        run.reload();
      }, REFRESH_MS);
    }
  }, [live.events.length]);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const finished = run.data ? FINISHED_RUN.has(run.data.state) : false;
  useEffect(() => {
    if (finished) return;
    const tick = window.setInterval(() => setNow(Date.now()), 500);
    return () => window.clearInterval(tick);
  }, [finished]);

  const states = useMemo(() => stepStates(run.data, live.events), [run.data, live.events]);
  if (!run.data) {
    return (
      <section>
        <h1>Run {id}</h1>
        <ErrorLine error={run.error} />
        <Loading when={run.loading} />
      </section>
    );
  }
  const current = run.data;
  const state = runState(current.state);
  const start = millis(current.startTime);
  const end = millis(current.endTime) ?? (finished ? undefined : now);
  const step = current.steps.find((s) => s.stepId === selected);
  return (
    <section aria-labelledby="run-title">
      <div class="title-row">
        <h1 id="run-title">
          Run <code>{id}</code>
        </h1>
        <Badge state={state}>{state}</Badge>
        <span class={`link-state ${live.link}`} aria-live="polite">
          {live.link === "live" ? "● live" : live.link}
          {live.link === "reconnecting" ? ` (resumes after #${live.after})` : ""}
        </span>
      </div>
      <dl class="facts">
        <dt>Workflow</dt>
        <dd>
          <a href={href({ page: "workflow", id: shortId(current.workflow) })}>{shortId(current.workflow)}</a> v
          {String(current.workflowVersion)}
        </dd>
        <dt>Created</dt>
        <dd>{when(current.createTime)}</dd>
        <dt>Duration</dt>
        <dd>{start !== undefined && end !== undefined ? span(end - start) : "—"}</dd>
        <dt>Tokens</dt>
        <dd>{tokens(current.usage)}</dd>
        <dt>Cost</dt>
        <dd class="num" data-testid="run-cost">
          {money(current.cost)}
        </dd>
        {current.maxCost ? (
          <>
            <dt>Max cost</dt>
            <dd>{money(current.maxCost)}</dd>
          </>
        ) : null}
      </dl>
      <RunActionBar ctx={{ run: current, workflow: workflow.data }} onDone={run.reload} />
      {current.failure ? (
        <p class="error" role="alert">
          Failed: <strong>{current.failure.type}</strong> {current.failure.message}
        </p>
      ) : null}
      <ErrorLine error={run.error ?? workflow.error ?? live.error} />

      <h2>Steps</h2>
      {workflow.data?.spec ? (
        <Dag steps={workflow.data.spec.steps} nodes={states} selected={selected} onSelect={setSelected} />
      ) : (
        <Loading when={workflow.loading} />
      )}
      {step ? <StepDetail step={step} onClose={() => setSelected(undefined)} /> : null}

      <h2>Timeline</h2>
      <Timeline run={current} now={now} />

      <h2>Cost and tokens per step</h2>
      <StepTable run={current} states={states} onSelect={setSelected} />

      <div class="columns">
        <div>
          <h2>Input</h2>
          <Json value={current.input ?? {}} />
        </div>
        <div>
          <h2>Output</h2>
          <Json value={current.output ?? null} />
        </div>
      </div>

      <h2>Events</h2>
      <EventLog events={live.events} />
    </section>
  );
}

/** The step states shown: the run as last read, overtaken by any later event. */
function stepStates(run: Run | undefined, events: RunEvent[]): Map<string, DagNode> {
  const nodes = new Map<string, DagNode>();
  for (const step of run?.steps ?? []) {
    nodes.set(step.stepId, { id: step.stepId, state: stepState(step.state), detail: detail(step) });
  }
  const seen = run?.lastSequence ?? 0n;
  for (const event of events) {
    if (event.sequence <= seen || !event.stepId || event.stepState === StepState.UNSPECIFIED) continue;
    const state = stepState(event.stepState);
    nodes.set(event.stepId, { id: event.stepId, state, detail: state });
  }
  return nodes;
}

function detail(step: StepRun): string {
  const state = stepState(step.state);
  if (step.itemsTotal) return `${state} ${step.itemsSucceeded}/${step.itemsTotal}`;
  if (step.state === StepState.WAITING && step.reason) return `waiting: ${step.reason}`.slice(0, 24);
  if (step.attempts.length > 1) return `${state} (${step.attempts.length} attempts)`;
  return state;
}

function StepTable({
  run,
  states,
  onSelect,
}: {
  run: Run;
  states: Map<string, DagNode>;
  onSelect: (id: string) => void;
}) {
  return (
    <table class="grid">
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">Agent</th>
          <th scope="col">State</th>
          <th scope="col">Attempts</th>
          <th scope="col">Duration</th>
          <th scope="col">Tokens</th>
          <th scope="col">Cost</th>
          <th scope="col">Failure</th>
        </tr>
      </thead>
      <tbody>
        {run.steps.map((step) => {
          const state = states.get(step.stepId)?.state ?? stepState(step.state);
          const start = millis(step.startTime);
          const end = millis(step.endTime);
          return (
            <tr key={step.stepId} data-step={step.stepId}>
              <td>
                <button type="button" class="link" onClick={() => onSelect(step.stepId)}>
                  {step.stepId}
                </button>
              </td>
              <td>{step.agent}</td>
              <td>
                <Badge state={state}>{state}</Badge>
              </td>
              <td class="num">{step.attempts.length}</td>
              <td>{start !== undefined && end !== undefined ? span(end - start) : "—"}</td>
              <td>{tokens(step.usage)}</td>
              <td class="num">{money(step.cost)}</td>
              <td>
                {step.failure ? (
                  <span class="error-text">
                    <strong>{step.failure.type}</strong> {step.failure.message}
                  </span>
                ) : step.reason ? (
                  <span class="muted">{step.reason}</span>
                ) : null}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function StepDetail({ step, onClose }: { step: StepRun; onClose: () => void }) {
  return (
    <section class="card" aria-label={`Step ${step.stepId}`}>
      <div class="title-row">
        <h3>
          Step <code>{step.stepId}</code> ({step.agent})
        </h3>
        <button type="button" class="link" onClick={onClose}>
          Close
        </button>
      </div>
      {step.failure ? (
        <p class="error">
          <strong>{step.failure.type}</strong> {step.failure.message}
          {step.failure.retryable ? " (retryable)" : ""}
        </p>
      ) : null}
      <div class="columns">
        <div>
          <h4>Input</h4>
          <Json value={step.input ?? {}} />
        </div>
        <div>
          <h4>Output</h4>
          <Json value={step.output ? toJson(ValueSchema, step.output) : null} />
        </div>
      </div>
      <h4>Attempts</h4>
      <ul>
        {step.attempts.slice(-20).map((a) => (
          <li key={`${a.item}-${a.number}`}>
            {a.item >= 0 ? `item ${a.item}, ` : ""}attempt {a.number}: {stepStateOfAttempt(a.state)}, {tokens(a.usage)},{" "}
            {money(a.cost)}
            {a.failure ? ` — ${a.failure.type}: ${a.failure.message}` : ""}
          </li>
        ))}
      </ul>
    </section>
  );
}

function stepStateOfAttempt(state: number): string {
  return ["unspecified", "running", "succeeded", "failed", "interrupted", "cancelled"][state] ?? String(state);
}

function EventLog({ events }: { events: RunEvent[] }) {
  const shown = events.slice(-300);
  return (
    <div class="events" tabIndex={0} aria-label="Event stream">
      <table class="grid compact">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Time</th>
            <th scope="col">Event</th>
            <th scope="col">Step</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((e) => (
            <tr key={String(e.sequence)}>
              <td class="num">{String(e.sequence)}</td>
              <td>{when(e.time)}</td>
              <td>{eventType(e.type)}</td>
              <td>{e.stepId}</td>
              <td>{eventDetail(e)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function eventDetail(e: RunEvent): string {
  switch (e.type) {
    case RunEventType.LLM_CALL:
      return `${e.provider}/${e.model}: ${tokens(e.usage)}, ${money(e.cost)}`;
    case RunEventType.STEP_FAILED:
    case RunEventType.RUN_FAILED:
    case RunEventType.STEP_RETRYING:
      return e.failure ? `${e.failure.type}: ${e.failure.message}` : e.message;
    case RunEventType.APPROVAL_RESOLVED:
      return `${e.decision === 1 ? "approved" : "rejected"}${e.actor ? ` by ${e.actor}` : ""}${e.message ? `: ${e.message}` : ""}`;
    default:
      return e.message || (e.breaker ? `breaker ${e.breaker}` : e.budget ? `budget ${e.budget}` : "");
  }
}

function Json({ value }: { value: JsonValue }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}
