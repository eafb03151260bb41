import { api } from "../api.js";
import { Badge, ErrorLine } from "../components/Status.js";
import { PluginStatus } from "../gen/podium/v1/control_service_pb.js";
import { enumLabel, seconds, span, when } from "../format.js";
import { useLoad } from "../hooks.js";

export function AgentsPage() {
  const agents = useLoad(() => api.control.listAgents({}), []);
  const providers = useLoad(() => api.control.listProviders({}), []);
  const plugins = useLoad(() => api.control.listPlugins({}), []);
  const status = useLoad(() => api.control.getSystemStatus({}), []);
  return (
    <section aria-labelledby="agents-title">
      <h1 id="agents-title">Agents and plugins</h1>
      <ErrorLine error={status.error} />
      {status.data ? (
        <dl class="facts">
          <dt>Server</dt>
          <dd>podium {status.data.version}</dd>
          <dt>Up since</dt>
          <dd>
            {when(status.data.startTime)} ({span(seconds(status.data.uptime) * 1000)})
          </dd>
          <dt>Active runs</dt>
          <dd>{String(status.data.activeRuns)}</dd>
          <dt>Running steps</dt>
          <dd>{String(status.data.runningSteps)}</dd>
        </dl>
      ) : null}
      <h2>Agents</h2>
      <ErrorLine error={agents.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Version</th>
            <th scope="col">Plugin</th>
            <th scope="col">Where</th>
            <th scope="col">Description</th>
          </tr>
        </thead>
        <tbody>
          {agents.data?.agents.map((a) => (
            <tr key={a.name}>
              <td>{a.name}</td>
              <td>{a.version}</td>
              <td>{a.plugin || "—"}</td>
              <td>
                {a.inProcess ? "in-process" : ""}
                {a.workers.map((w) => (
                  <span key={w.queue} class="tag">
                    queue {w.queue}: {w.sessions} sessions, {w.running}/{w.capacity} running
                  </span>
                ))}
              </td>
              <td class="muted">{a.description}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Providers</h2>
      <ErrorLine error={providers.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Provider</th>
            <th scope="col">Plugin</th>
            <th scope="col">Models</th>
          </tr>
        </thead>
        <tbody>
          {providers.data?.providers.map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td>{p.plugin}</td>
              <td>{p.models.join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Plugins</h2>
      <ErrorLine error={plugins.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Plugin</th>
            <th scope="col">Distribution</th>
            <th scope="col">Status</th>
            <th scope="col">Registers</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {plugins.data?.plugins.map((p) => {
            const state = enumLabel(PluginStatus, p.status, "PLUGIN_STATUS_");
            return (
              <tr key={p.name}>
                <td>{p.name}</td>
                <td>
                  {p.distribution} {p.version}
                </td>
                <td>
                  <Badge state={`plugin-${state}`}>{state}</Badge>
                </td>
                <td class="small">
                  {[...p.agents.map((a) => `agent ${a}`), ...p.providers.map((x) => `provider ${x}`), ...p.tools.map((t) => `tool ${t}`)].join(", ")}
                </td>
                <td class="error-text">{p.error}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
