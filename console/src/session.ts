// The signed-in token lives in sessionStorage only: it ends with the tab, and nothing else of
// the console is stored in the browser.
const KEY = "podium.token";
type Listener = () => void;
const listeners = new Set<Listener>();

export const session = {
  token(): string | null {
    return window.sessionStorage.getItem(KEY);
  },
  signIn(token: string): void {
    window.sessionStorage.setItem(KEY, token.trim());
    listeners.forEach((l) => l());
  },
  signOut(): void {
    window.sessionStorage.removeItem(KEY);
    listeners.forEach((l) => l());
  },
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
