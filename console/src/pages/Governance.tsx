import { api } from "../api.js";
import { Badge, ErrorLine, Loading } from "../components/Status.js";
import { BreakerState, BudgetPeriod, QuotaDimension, ScopeKind, type Scope } from "../gen/podium/v1/control_service_pb.js";
import { enumLabel, money, moneyAmount, when } from "../format.js";
import { useAction, useLoad } from "../hooks.js";

const SPEND_KINDS: { kind: ScopeKind; label: string }[] = [
  { kind: ScopeKind.PROVIDER, label: "By provider" },
  { kind: ScopeKind.MODEL, label: "By model" },
  { kind: ScopeKind.WORKFLOW, label: "By workflow" },
];

function scope(s: Scope | undefined): string {
  if (!s) return "—";
  const kind = enumLabel(ScopeKind, s.kind, "SCOPE_KIND_");
  return s.value ? `${kind}:${s.value}` : kind;
}

export function GovernancePage() {
  const budgets = useLoad(() => api.control.listBudgets({}), []);
  const quotas = useLoad(() => api.control.listQuotas({}), []);
  const breakers = useLoad(() => api.control.listBreakers({}), []);
  const spend = useLoad(
    () => Promise.all(SPEND_KINDS.map((s) => api.control.getSpend({ scopeKind: s.kind, period: BudgetPeriod.MONTH }))),
    [],
  );
  const reset = useAction();
  return (
    <section aria-labelledby="gov-title">
      <h1 id="gov-title">Governance</h1>

      <h2>Budgets</h2>
      <ErrorLine error={budgets.error} />
      <Loading when={budgets.loading && !budgets.data} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Budget</th>
            <th scope="col">Scope</th>
            <th scope="col">Period</th>
            <th scope="col">Spent</th>
            <th scope="col">Reserved</th>
            <th scope="col">Limit</th>
            <th scope="col">Utilisation</th>
          </tr>
        </thead>
        <tbody>
          {budgets.data?.budgets.map((b) => {
            const limit = moneyAmount(b.limit);
            const used = moneyAmount(b.spent) + moneyAmount(b.reserved);
            const fraction = limit > 0 ? used / limit : 0;
            return (
              <tr key={b.name}>
                <td>{b.name}</td>
                <td>{scope(b.scope)}</td>
                <td>
                  {enumLabel(BudgetPeriod, b.period, "BUDGET_PERIOD_")}
                  {b.period === BudgetPeriod.NONE ? "" : ` ${b.periodKey}`}
                </td>
                <td class="num">{money(b.spent)}</td>
                <td class="num">{money(b.reserved)}</td>
                <td class="num">{money(b.limit, 2)}</td>
                <td>
                  <meter min={0} max={1} high={b.warnFraction || 0.8} value={Math.min(fraction, 1)} aria-label={`${b.name} utilisation`} />{" "}
                  {(fraction * 100).toFixed(1)}%
                </td>
              </tr>
            );
          })}
          {budgets.data?.budgets.length === 0 ? (
            <tr>
              <td colSpan={7} class="muted">
                No budgets (`podium serve --policy`, `podium budgets set`).
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>

      <h2>Quotas</h2>
      <ErrorLine error={quotas.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Quota</th>
            <th scope="col">Scope</th>
            <th scope="col">Dimension</th>
            <th scope="col">Limit</th>
            <th scope="col">Burst</th>
            <th scope="col">Available now</th>
            <th scope="col">Paused until</th>
          </tr>
        </thead>
        <tbody>
          {quotas.data?.quotas.map((q) => (
            <tr key={q.name}>
              <td>{q.name}</td>
              <td>{scope(q.scope)}</td>
              <td>{enumLabel(QuotaDimension, q.dimension, "QUOTA_DIMENSION_")}</td>
              <td class="num">{q.limit}</td>
              <td class="num">{q.burst}</td>
              <td class="num">{q.available.toFixed(1)}</td>
              <td>{q.pausedUntil ? when(q.pausedUntil) : "—"}</td>
            </tr>
          ))}
          {quotas.data?.quotas.length === 0 ? (
            <tr>
              <td colSpan={7} class="muted">
                No quotas.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>

      <h2>Circuit breakers</h2>
      <ErrorLine error={breakers.error ?? reset.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Breaker</th>
            <th scope="col">Tenant</th>
            <th scope="col">State</th>
            <th scope="col">Cause</th>
            <th scope="col">Failures / calls</th>
            <th scope="col">Probe after</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {breakers.data?.breakers.map((b) => {
            const state = enumLabel(BreakerState, b.state, "BREAKER_STATE_");
            return (
              <tr key={`${b.tenant}/${b.name}`} data-breaker={b.name}>
                <td>{b.name}</td>
                <td>{b.tenant}</td>
                <td>
                  <Badge state={`breaker-${state}`}>{state}</Badge>
                </td>
                <td>{b.cause || "—"}</td>
                <td class="num">
                  {String(b.failures)} / {String(b.calls)}
                </td>
                <td>{b.state === BreakerState.OPEN ? when(b.halfOpenTime) : "—"}</td>
                <td>
                  {b.state !== BreakerState.CLOSED ? (
                    <button
                      type="button"
                      class="danger"
                      aria-label={`Reset ${b.name}`}
                      disabled={reset.busy}
                      onClick={async () => {
                        if (await reset.run(() => api.control.resetBreaker({ name: b.name }))) breakers.reload();
                      }}
                    >
                      Reset
                    </button>
                  ) : null}
                </td>
              </tr>
            );
          })}
          {breakers.data?.breakers.length === 0 ? (
            <tr>
              <td colSpan={7} class="muted">
                No breaker has seen a call yet.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>

      <h2>Spend this month</h2>
      <ErrorLine error={spend.error} />
      <div class="columns three">
        {SPEND_KINDS.map((s, i) => {
          const answer = spend.data?.[i];
          return (
            <div key={s.kind}>
              <h3>{s.label}</h3>
              <table class="grid compact">
                <tbody>
                  {answer?.entries.map((e) => (
                    <tr key={`${e.scope?.value}-${e.periodKey}`}>
                      <td>{e.scope?.value || scope(e.scope)}</td>
                      <td class="num">{money(e.spent)}</td>
                      <td class="num muted">{String(e.calls)} calls</td>
                    </tr>
                  ))}
                  {answer && answer.entries.length === 0 ? (
                    <tr>
                      <td class="muted">Nothing spent.</td>
                    </tr>
                  ) : null}
                </tbody>
              </table>
            </div>
          );
        })}
      </div>
    </section>
  );
}
