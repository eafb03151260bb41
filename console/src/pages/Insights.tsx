import { api } from "../api.js";
import { ErrorLine, Loading } from "../components/Status.js";
import { RecommendationKind } from "../gen/podium/v1/control_service_pb.js";
import { enumLabel, money, seconds, span } from "../format.js";
import { useLoad } from "../hooks.js";
import { href } from "../router.js";

const ms = (d: Parameters<typeof seconds>[0]) => span(seconds(d) * 1000);

export function InsightsPage({ id }: { id: string }) {
  const answer = useLoad(() => api.control.getWorkflowInsights({ workflow: `workflows/${id}` }), [id]);
  const insights = answer.data?.insights;
  return (
    <section aria-labelledby="insights-title">
      <div class="title-row">
        <h1 id="insights-title">
          Insights: <a href={href({ page: "workflow", id })}>{id}</a>
        </h1>
      </div>
      <ErrorLine error={answer.error} />
      <Loading when={answer.loading && !answer.data} />
      {insights ? (
        <>
          <dl class="facts">
            <dt>Runs read</dt>
            <dd>{String(insights.runs)}</dd>
            <dt>Run duration</dt>
            <dd>
              p50 {ms(insights.p50RunDuration)}, p95 {ms(insights.p95RunDuration)}
            </dd>
            <dt>Run cost</dt>
            <dd>
              p50 {money(insights.p50RunCost)}, p95 {money(insights.p95RunCost)}
            </dd>
            <dt>Critical path</dt>
            <dd>
              {insights.criticalPath.join(" → ") || "—"} ({ms(insights.criticalPathDuration)})
            </dd>
          </dl>
          {insights.note ? <p class="muted">{insights.note}</p> : null}
          <h2>Recommendations</h2>
          {insights.recommendations.length === 0 ? <p class="muted">None.</p> : null}
          <ul class="recommendations">
            {insights.recommendations.map((r, i) => (
              <li key={i} class="card">
                <strong>{enumLabel(RecommendationKind, r.kind, "RECOMMENDATION_KIND_")}</strong>{" "}
                {r.stepId ? <code>{r.stepId}</code> : null}: {r.summary}
                <p class="muted">{r.evidence}</p>
                {r.suggestion ? <p>{r.suggestion}</p> : null}
                <p class="small">
                  Saves about {ms(r.estimatedTimeSaving)} and {money(r.estimatedCostSaving)} per run.
                </p>
              </li>
            ))}
          </ul>
          <h2>Steps</h2>
          <table class="grid">
            <thead>
              <tr>
                <th scope="col">Step</th>
                <th scope="col">Agent</th>
                <th scope="col">Executions</th>
                <th scope="col">p50 / p95</th>
                <th scope="col">Slot wait p95</th>
                <th scope="col">Quota wait p95</th>
                <th scope="col">Retries</th>
                <th scope="col">Failures</th>
                <th scope="col">Cost share</th>
                <th scope="col">Mean cost</th>
              </tr>
            </thead>
            <tbody>
              {insights.steps.map((s) => (
                <tr key={s.stepId}>
                  <td>{s.stepId}</td>
                  <td>{s.agent}</td>
                  <td class="num">{String(s.executions)}</td>
                  <td>
                    {ms(s.p50Duration)} / {ms(s.p95Duration)}
                  </td>
                  <td>{ms(s.p95QueueWait)}</td>
                  <td>{ms(s.p95QuotaWait)}</td>
                  <td class="num">{(s.retryRate * 100).toFixed(0)}%</td>
                  <td class="num">{(s.failureRate * 100).toFixed(0)}%</td>
                  <td class="num">{(s.costShare * 100).toFixed(0)}%</td>
                  <td class="num">{money(s.meanCost)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}
