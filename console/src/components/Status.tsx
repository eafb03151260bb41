// Small pieces shared by pages: state badges, errors, loading.
import type { ComponentChildren } from "preact";

export function Badge({ state, children }: { state: string; children: ComponentChildren }) {
  return (
    <span class={`badge state-${state.replace(/ /g, "-")}`} data-state={state}>
      {children}
    </span>
  );
}

export function ErrorLine({ error }: { error: string | undefined }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function Loading({ when }: { when: boolean }) {
  return when ? <p class="muted">Loading…</p> : null;
}
