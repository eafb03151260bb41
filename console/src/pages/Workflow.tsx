import { toJson, type JsonObject } from "@bufbuild/protobuf";
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { Dag } from "../components/Dag.js";
import { ErrorLine, Loading } from "../components/Status.js";
import { WorkflowSpecSchema } from "../gen/podium/v1/workflow_pb.js";
import { EstimateSource } from "../gen/podium/v1/workflow_service_pb.js";
import { money, seconds, span, when, yaml } from "../format.js";
import { useAction, useLoad } from "../hooks.js";
import { href } from "../router.js";

export function WorkflowPage({ id }: { id: string }) {
  const name = `workflows/${id}`;
  const latest = useLoad(() => api.workflows.getWorkflow({ name }).then((r) => r.workflow), [name]);
  const [version, setVersion] = useState<bigint>(0n);
  const shown = useLoad(
    () => api.workflows.getWorkflow({ name, version }).then((r) => r.workflow),
    [name, String(version)],
  );
  const spec = shown.data?.spec;
  const validation = useLoad(
    async () => (spec ? api.workflows.validateWorkflow({ spec, workflowId: id }) : undefined),
    [shown.data?.name, String(shown.data?.version ?? "")],
  );
  const versions: bigint[] = [];
  for (let v = latest.data?.version ?? 0n; v >= 1n; v--) versions.push(v);
  return (
    <section aria-labelledby="workflow-title">
      <div class="title-row">
        <h1 id="workflow-title">
          Workflow <code>{id}</code>
        </h1>
        <a href={href({ page: "insights", id })}>Insights</a>
        <a href={`#/runs`}>Runs</a>
      </div>
      <ErrorLine error={latest.error ?? shown.error} />
      <Loading when={shown.loading && !shown.data} />
      {shown.data ? (
        <>
          <dl class="facts">
            <dt>
              <label for="version">Version</label>
            </dt>
            <dd>
              <select id="version" value={String(version || shown.data.version)} onChange={(e) => setVersion(BigInt((e.target as HTMLSelectElement).value))}>
                {versions.map((v) => (
                  <option key={String(v)} value={String(v)}>
                    {String(v)}
                    {v === latest.data?.version ? " (latest)" : ""}
                  </option>
                ))}
              </select>
            </dd>
            <dt>Applied</dt>
            <dd>{when(shown.data.createTime)}</dd>
            <dt>Description</dt>
            <dd>{spec?.description || "—"}</dd>
          </dl>
          <StartRun workflow={name} version={version} />
          {spec ? <Dag steps={spec.steps} nodes={new Map()} /> : null}
          <h2>Validation</h2>
          <ErrorLine error={validation.error} />
          {validation.data ? (
            <div class="columns">
              <div>
                <h3>Execution levels</h3>
                <ol>
                  {validation.data.levels.map((level, i) => (
                    <li key={i}>{level.stepIds.join(", ")}</li>
                  ))}
                </ol>
              </div>
              <div>
                <h3>Critical path</h3>
                <p>{validation.data.criticalPath.join(" → ") || "—"}</p>
                <h3>Estimate</h3>
                {validation.data.estimate ? (
                  <p>
                    {validation.data.estimate.source === EstimateSource.HISTORY
                      ? `From ${validation.data.estimate.runs} finished runs: p50 ${span(seconds(validation.data.estimate.p50Duration) * 1000)}, p95 ${span(seconds(validation.data.estimate.p95Duration) * 1000)}, p50 cost ${money(validation.data.estimate.p50Cost)}, p95 cost ${money(validation.data.estimate.p95Cost)}`
                      : `At most ${money(validation.data.estimate.maxCost)} (price table)`}
                    {validation.data.estimate.note ? <span class="muted"> — {validation.data.estimate.note}</span> : null}
                  </p>
                ) : (
                  <p class="muted">No estimate.</p>
                )}
              </div>
            </div>
          ) : null}
          <h2>Definition</h2>
          <pre class="yaml" tabIndex={0} aria-label="Definition as YAML">
            {`workflow_id: ${id}\nspec:${spec ? yaml(toJson(WorkflowSpecSchema, spec) as JsonObject, 1) : " {}"}`}
          </pre>
        </>
      ) : null}
    </section>
  );
}

function StartRun({ workflow, version }: { workflow: string; version: bigint }) {
  const [input, setInput] = useState("{}");
  const [labels, setLabels] = useState("");
  const action = useAction();
  const [problem, setProblem] = useState<string | undefined>(undefined);
  return (
    <form
      class="card start"
      aria-label="Start a run"
      onSubmit={async (e) => {
        e.preventDefault();
        let parsed: JsonObject;
        try {
          parsed = JSON.parse(input || "{}") as JsonObject;
        } catch (error) {
          setProblem(`input is not JSON: ${(error as Error).message}`);
          return;
        }
        setProblem(undefined);
        let started = "";
        const ok = await action.run(async () => {
          const response = await api.execution.startRun({
            workflow,
            workflowVersion: version,
            input: parsed,
            labels: Object.fromEntries(
              labels
                .split(",")
                .map((pair) => pair.split("=", 2).map((s) => s.trim()))
                .filter((pair): pair is [string, string] => pair.length === 2 && !!pair[0]),
            ),
          });
          started = response.run?.name ?? "";
        });
        if (ok && started) window.location.hash = href({ page: "run", id: started.replace(/^runs\//, "") });
      }}
    >
      <h2>Start a run</h2>
      <label for="run-input">Input (JSON)</label>
      <textarea id="run-input" rows={6} value={input} onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)} />
      <label for="run-labels">Labels</label>
      <input id="run-labels" value={labels} placeholder="key=value, key2=value2" onInput={(e) => setLabels((e.target as HTMLInputElement).value)} />
      <button type="submit" class="primary" disabled={action.busy}>
        Start run
      </button>
      <ErrorLine error={problem ?? action.error} />
    </form>
  );
}
