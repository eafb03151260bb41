import { useState } from "preact/hooks";
import { session } from "../session.js";

/** Shown when the server refuses a call as unauthenticated: a token, kept for this tab only. */
export function SignIn({ reason, onSignedIn }: { reason: string; onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  return (
    <section class="card narrow" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <p class="muted">This server requires an API token ({reason}).</p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (!token.trim()) return;
          session.signIn(token);
          onSignedIn();
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          placeholder="pod_…"
        />
        <p class="muted small">Kept in this tab's session only (`podium tokens create`).</p>
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}
