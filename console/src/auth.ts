// Whether the server asked for credentials: the shell then shows the sign-in form.
type Listener = (reason: string | undefined) => void;
const listeners = new Set<Listener>();
let reason: string | undefined;

export const auth = {
  required(why: string): void {
    reason = why;
    listeners.forEach((l) => l(reason));
  },
  satisfied(): void {
    reason = undefined;
    listeners.forEach((l) => l(reason));
  },
  reason(): string | undefined {
    return reason;
  },
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
