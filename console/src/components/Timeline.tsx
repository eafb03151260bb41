// A Gantt of a run: per step, its attempts as bars (by state), the waits before and between
// them (retry delays, quota or slot waits, approvals) as hatched spans.
import type { Run } from "../gen/podium/v1/run_pb.js";
import { millis, span } from "../format.js";
import { attemptState, stepState } from "../states.js";

const WIDTH = 720;

export function Timeline({ run, now }: { run: Run; now: number }) {
  const start = millis(run.startTime) ?? millis(run.createTime);
  if (start === undefined) return <p class="muted">Not started yet.</p>;
  const end = millis(run.endTime) ?? now;
  const total = Math.max(end - start, 1);
  const x = (t: number) => ((t - start) / total) * WIDTH;
  const steps = run.steps.filter((s) => millis(s.startTime) !== undefined);
  return (
    <div class="timeline" role="table" aria-label="Timeline of steps and attempts">
      <div class="tl-row tl-head" role="row">
        <span role="columnheader">Step</span>
        <span role="columnheader" class="tl-scale">
          0 — {span(total)}
        </span>
      </div>
      {steps.map((step) => {
        const stepStart = millis(step.startTime)!;
        const stepEnd = millis(step.endTime) ?? now;
        // A fan-out's item attempts overlap: drawn on one line (the latest 50), without waits.
        const fanOut = step.itemsTotal > 0;
        const attempts = step.attempts.slice(-50);
        const waits: { from: number; to: number }[] = [];
        let cursor = stepStart;
        for (const attempt of fanOut ? [] : attempts) {
          const from = millis(attempt.startTime);
          if (from !== undefined && from - cursor > total / 400) waits.push({ from: cursor, to: from });
          cursor = millis(attempt.endTime) ?? now;
        }
        // A step waiting now (a retry's delay, a quota, an approval): the wait runs to now.
        const waitingNow = stepState(step.state) === "waiting";
        if (!fanOut && (waitingNow || !attempts.length) && stepEnd - cursor > total / 400) {
          waits.push({ from: cursor, to: stepEnd });
        }
        return (
          <div class="tl-row" role="row" key={step.stepId}>
            <span role="cell" class="tl-label">
              {step.stepId}
            </span>
            <svg role="cell" width={WIDTH} height={18} class="tl-bars" aria-label={`${step.stepId}: ${stepState(step.state)}`}>
              {waits.map((w, i) => (
                <rect key={`w${i}`} class="wait" x={x(w.from)} y={5} width={Math.max(x(w.to) - x(w.from), 1)} height={8}>
                  <title>waiting {span(w.to - w.from)}{step.reason ? ` (${step.reason})` : ""}</title>
                </rect>
              ))}
              {attempts.map((attempt) => {
                const from = millis(attempt.startTime) ?? stepStart;
                const to = millis(attempt.endTime) ?? now;
                const state = attemptState(attempt.state);
                return (
                  <rect
                    key={`${attempt.item}-${attempt.number}`}
                    class={`bar state-${state}`}
                    x={x(from)}
                    y={2}
                    width={Math.max(x(to) - x(from), 2)}
                    height={14}
                  >
                    <title>
                      attempt {attempt.number}: {state}, {span(to - from)}
                      {attempt.failure ? ` — ${attempt.failure.type}: ${attempt.failure.message}` : ""}
                    </title>
                  </rect>
                );
              })}
            </svg>
          </div>
        );
      })}
    </div>
  );
}
