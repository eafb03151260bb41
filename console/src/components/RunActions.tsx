// The run page's action bar. Each action is one entry of RUN_ACTIONS: when it applies, what it
// asks for (a comment, a reason) and the call it makes. Adding an action (signal, pause,
// resume, re-run) is one more entry here; the bar, the form and the error line are shared.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ApprovalDecision } from "../gen/podium/v1/event_pb.js";
import { RunState, StepState, type Run } from "../gen/podium/v1/run_pb.js";
import type { Workflow } from "../gen/podium/v1/workflow_pb.js";
import { useAction } from "../hooks.js";
import { FINISHED_RUN } from "../states.js";

export interface RunActionContext {
  run: Run;
  workflow: Workflow | undefined;
}

export interface RunAction {
  id: string;
  label: string;
  /** Whether the action applies to the run as it is now. */
  applies: (ctx: RunActionContext) => boolean;
  /** The text it asks for first, if any (a reason, a comment). */
  ask?: { label: string; required: boolean };
  /** Destructive actions are styled as such. */
  danger?: boolean;
  perform: (ctx: RunActionContext, text: string) => Promise<unknown>;
}

/** Steps waiting for a decision: WAITING steps whose definition is an approval. */
export function waitingApprovals(ctx: RunActionContext): string[] {
  const approvals = new Set(ctx.workflow?.spec?.steps.filter((s) => s.approval).map((s) => s.id));
  return ctx.run.steps
    .filter((s) => s.state === StepState.WAITING && approvals.has(s.stepId))
    .map((s) => s.stepId);
}

function approvalActions(): RunAction[] {
  return [ApprovalDecision.APPROVE, ApprovalDecision.REJECT].map((decision) => {
    const approve = decision === ApprovalDecision.APPROVE;
    return {
      id: approve ? "approve" : "reject",
      label: approve ? "Approve" : "Reject",
      danger: !approve,
      applies: (ctx) => ctx.run.state === RunState.WAITING_APPROVAL && waitingApprovals(ctx).length > 0,
      ask: { label: "Comment", required: !approve },
      perform: async (ctx, comment) => {
        for (const stepId of waitingApprovals(ctx)) {
          await api.execution.resolveApproval({ run: ctx.run.name, stepId, decision, comment });
        }
      },
    };
  });
}

export const RUN_ACTIONS: RunAction[] = [
  ...approvalActions(),
  {
    id: "cancel",
    label: "Cancel run",
    danger: true,
    applies: (ctx) => !FINISHED_RUN.has(ctx.run.state),
    ask: { label: "Reason", required: false },
    perform: (ctx, reason) => api.execution.cancelRun({ name: ctx.run.name, reason }),
  },
];

export function RunActionBar({ ctx, onDone }: { ctx: RunActionContext; onDone: () => void }) {
  const [open, setOpen] = useState<RunAction | undefined>(undefined);
  const [text, setText] = useState("");
  const action = useAction();
  const available = RUN_ACTIONS.filter((a) => a.applies(ctx));
  const perform = async (chosen: RunAction) => {
    if (await action.run(() => chosen.perform(ctx, text))) {
      setOpen(undefined);
      setText("");
      onDone();
    }
  };
  const waiting = waitingApprovals(ctx);
  return (
    <div class="actions" role="toolbar" aria-label="Run actions">
      {waiting.length ? <span class="muted">Waiting for a decision: {waiting.join(", ")}</span> : null}
      {available.map((a) => (
        <button
          key={a.id}
          type="button"
          class={a.danger ? "danger" : "primary"}
          aria-expanded={open?.id === a.id}
          disabled={action.busy}
          onClick={() => (a.ask ? setOpen(open?.id === a.id ? undefined : a) : perform(a))}
        >
          {a.label}
        </button>
      ))}
      {open ? (
        <form
          class="ask"
          onSubmit={(e) => {
            e.preventDefault();
            if (open.ask?.required && !text.trim()) return;
            void perform(open);
          }}
        >
          <label for="action-text">
            {open.ask?.label}
            {open.ask?.required ? " (required)" : ""}
          </label>
          <input
            id="action-text"
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
            autoFocus
          />
          <button type="submit" class={open.danger ? "danger" : "primary"} disabled={action.busy}>
            {open.label}
          </button>
        </form>
      ) : null}
      {action.error ? (
        <p class="error" role="alert">
          {action.error}
        </p>
      ) : null}
    </div>
  );
}
