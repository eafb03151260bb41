// Hash routes (#/runs/ID): the server serves one page, and a reload keeps the place.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "runs" }
  | { page: "run"; id: string }
  | { page: "workflows" }
  | { page: "workflow"; id: string }
  | { page: "governance" }
  | { page: "insights"; id: string }
  | { page: "agents" };

export function parse(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [head, id] = parts;
  switch (head) {
    case "runs":
      return id ? { page: "run", id } : { page: "runs" };
    case "workflows":
      return id ? { page: "workflow", id } : { page: "workflows" };
    case "insights":
      return id ? { page: "insights", id } : { page: "workflows" };
    case "governance":
      return { page: "governance" };
    case "agents":
      return { page: "agents" };
    default:
      return { page: "runs" };
  }
}

export function href(route: Route): string {
  switch (route.page) {
    case "run":
      return `#/runs/${encodeURIComponent(route.id)}`;
    case "workflow":
      return `#/workflows/${encodeURIComponent(route.id)}`;
    case "insights":
      return `#/insights/${encodeURIComponent(route.id)}`;
    default:
      return `#/${route.page}`;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parse(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
