import { useEffect, useState } from "preact/hooks";
import { auth } from "./auth.js";
import { href, useRoute, type Route } from "./router.js";
import { session } from "./session.js";
import { SignIn } from "./components/SignIn.js";
import { RunsPage } from "./pages/Runs.js";
import { RunPage } from "./pages/Run.js";
import { WorkflowsPage } from "./pages/Workflows.js";
import { WorkflowPage } from "./pages/Workflow.js";
import { GovernancePage } from "./pages/Governance.js";
import { InsightsPage } from "./pages/Insights.js";
import { AgentsPage } from "./pages/Agents.js";

const SECTIONS: { label: string; route: Route; pages: Route["page"][] }[] = [
  { label: "Runs", route: { page: "runs" }, pages: ["runs", "run"] },
  { label: "Workflows", route: { page: "workflows" }, pages: ["workflows", "workflow", "insights"] },
  { label: "Governance", route: { page: "governance" }, pages: ["governance"] },
  { label: "Agents & plugins", route: { page: "agents" }, pages: ["agents"] },
];

export function App() {
  const route = useRoute();
  const [needsSignIn, setNeedsSignIn] = useState<string | undefined>(auth.reason());
  const [signedIn, setSignedIn] = useState(session.token() !== null);
  useEffect(() => auth.subscribe(setNeedsSignIn), []);
  useEffect(() => session.subscribe(() => setSignedIn(session.token() !== null)), []);

  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/runs">
          Podium
        </a>
        <nav aria-label="Sections">
          {SECTIONS.map((section) => (
            <a
              key={section.label}
              href={href(section.route)}
              aria-current={section.pages.includes(route.page) ? "page" : undefined}
            >
              {section.label}
            </a>
          ))}
        </nav>
        <div class="who">
          {signedIn ? (
            <button type="button" class="link" onClick={() => session.signOut()}>
              Sign out
            </button>
          ) : null}
        </div>
      </header>
      <main>
        {needsSignIn !== undefined ? (
          <SignIn
            reason={needsSignIn}
            onSignedIn={() => {
              auth.satisfied();
            }}
          />
        ) : (
          <Page route={route} key={`${route.page}:${"id" in route ? route.id : ""}:${signedIn}`} />
        )}
      </main>
    </div>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "runs":
      return <RunsPage />;
    case "run":
      return <RunPage id={route.id} />;
    case "workflows":
      return <WorkflowsPage />;
    case "workflow":
      return <WorkflowPage id={route.id} />;
    case "governance":
      return <GovernancePage />;
    case "insights":
      return <InsightsPage id={route.id} />;
    case "agents":
      return <AgentsPage />;
  }
}
