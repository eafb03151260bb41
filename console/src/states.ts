// Enum values as words on the page.
import { RunState, StepState, AttemptState } from "./gen/podium/v1/run_pb.js";
import { RunEventType } from "./gen/podium/v1/event_pb.js";
import { enumLabel } from "./format.js";

export const runState = (s: RunState) => enumLabel(RunState, s, "RUN_STATE_");
export const stepState = (s: StepState) => enumLabel(StepState, s, "STEP_STATE_");
export const attemptState = (s: AttemptState) => enumLabel(AttemptState, s, "ATTEMPT_STATE_");
export const eventType = (t: RunEventType) => enumLabel(RunEventType, t, "RUN_EVENT_TYPE_");

export const FINISHED_RUN = new Set([
  RunState.SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELLED,
  RunState.PARTIALLY_SUCCEEDED,
]);

export const RUN_STATES = [
  RunState.PENDING,
  RunState.RUNNING,
  RunState.WAITING_APPROVAL,
  RunState.PAUSED,
  RunState.SUCCEEDED,
  RunState.PARTIALLY_SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELLED,
];
