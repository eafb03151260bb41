// Server streams that stay up: WatchRun resumes after the last sequence it delivered (no gap,
// no duplicate), WatchRuns reconnects (it has no position to resume from).
import { useEffect, useRef, useState } from "preact/hooks";
import { api, describe, isAborted, isUnauthenticated } from "./api.js";
import { auth } from "./auth.js";
import type { RunEvent } from "./gen/podium/v1/event_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchRunsRequestSchema } from "./gen/podium/v1/progress_service_pb.js";

export type LinkState = "connecting" | "live" | "reconnecting" | "ended";

const RETRY_MS = 1000;

/** Every event of a run from the start, live; `after` is the last sequence received. */
export function useRunEvents(run: string): { events: RunEvent[]; link: LinkState; after: bigint; error?: string } {
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [link, setLink] = useState<LinkState>("connecting");
  const [error, setError] = useState<string | undefined>(undefined);
  const after = useRef(0n);
  useEffect(() => {
    const abort = new AbortController();
    after.current = 0n;
    setEvents([]);
    (async () => {
      while (!abort.signal.aborted) {
        try {
          const stream = api.progress.watchRun(
            { run, afterSequence: after.current },
            { signal: abort.signal },
          );
          setLink("live");
          for await (const response of stream) {
            const fresh = response.events.filter((e) => e.sequence > after.current);
            if (fresh.length === 0) continue;
            after.current = fresh[fresh.length - 1]!.sequence;
            setEvents((old) => [...old, ...fresh]);
          }
          setLink("ended"); // the run's final event was delivered
          return;
        } catch (failure) {
          if (abort.signal.aborted || isAborted(failure)) return;
          if (isUnauthenticated(failure)) {
            auth.required(describe(failure));
            return;
          }
          setError(describe(failure));
          setLink("reconnecting");
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        }
      }
    })();
    return () => abort.abort();
  }, [run]);
  return { events, link, after: after.current, error };
}

/** Calls `onEvents` with each batch of live events of many runs, reconnecting on failure. */
export function useRunsFeed(filter: MessageInitShape<typeof WatchRunsRequestSchema>, onEvents: (events: RunEvent[]) => void, key: string): LinkState {
  const [link, setLink] = useState<LinkState>("connecting");
  const handler = useRef(onEvents);
  handler.current = onEvents;
  useEffect(() => {
    const abort = new AbortController();
    (async () => {
      while (!abort.signal.aborted) {
        try {
          const stream = api.progress.watchRuns(filter, { signal: abort.signal });
          setLink("live");
          for await (const response of stream) handler.current(response.events);
        } catch (failure) {
          if (abort.signal.aborted || isAborted(failure)) return;
          if (isUnauthenticated(failure)) {
            auth.required(describe(failure));
            return;
          }
        }
        setLink("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    })();
    return () => abort.abort();
  }, [key]);
  return link;
}
