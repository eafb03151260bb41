import { api } from "../api.js";
import { ErrorLine, Loading } from "../components/Status.js";
import { shortId, when } from "../format.js";
import { useLoad } from "../hooks.js";
import { href } from "../router.js";

export function WorkflowsPage() {
  const list = useLoad(() => api.workflows.listWorkflows({ pageSize: 200 }), []);
  return (
    <section aria-labelledby="workflows-title">
      <h1 id="workflows-title">Workflows</h1>
      <ErrorLine error={list.error} />
      <Loading when={list.loading && !list.data} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Workflow</th>
            <th scope="col">Latest version</th>
            <th scope="col">Steps</th>
            <th scope="col">Applied</th>
            <th scope="col">Description</th>
            <th scope="col">Insights</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.workflows.map((w) => (
            <tr key={w.name}>
              <td>
                <a href={href({ page: "workflow", id: shortId(w.name) })}>{shortId(w.name)}</a>
              </td>
              <td class="num">{String(w.version)}</td>
              <td class="num">{w.spec?.steps.length ?? 0}</td>
              <td>{when(w.createTime)}</td>
              <td class="muted">{w.spec?.description}</td>
              <td>
                <a href={href({ page: "insights", id: shortId(w.name) })}>insights</a>
              </td>
            </tr>
          ))}
          {list.data && list.data.workflows.length === 0 ? (
            <tr>
              <td colSpan={6} class="muted">
                No workflows yet: <code>podium workflows apply -f examples/erp.yaml</code>
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}
