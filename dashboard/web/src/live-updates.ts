/**
 * `GET /admin/live` read as server-sent events from a `fetch` stream: EventSource cannot send the
 * Authorization header. Reconnects with capped, jittered exponential backoff, refreshes the session
 * on a 401, and treats a silent connection (no bytes for {@link SILENCE_MS}) as dead.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Activity, HistoryPoint, Overview } from './api-types.ts';
import type { OperatorSessionKeeper } from './operator-session.ts';

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export type LiveEvent = { type: 'overview'; data: Overview } | { type: 'point'; data: HistoryPoint } | { type: 'activity'; data: Activity };

export interface LiveHandlers {
  onEvent(event: LiveEvent): void;
  /** `retryInMs` is set while waiting to reconnect. */
  onState(state: LiveState, detail: { retryInMs?: number; error?: string }): void;
}

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;
/** A connection open this long counts as a success for the backoff. */
const STABLE_MS = 30_000;
/** The server sends an overview every few seconds; this long without a byte means the link is gone. */
const SILENCE_MS = 45_000;

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

function parseEvent(message: EventSourceMessage): LiveEvent | null {
  const type = message.event;
  if (type !== 'overview' && type !== 'point' && type !== 'activity') return null;
  try {
    return { type, data: JSON.parse(message.data) } as LiveEvent;
  } catch {
    return null;
  }
}

class StreamError extends Error {
  constructor(
    message: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

/** Reads one connection until it ends; resolves when the server closes it, rejects on a failure. */
async function readOnce(session: OperatorSessionKeeper, handlers: LiveHandlers, signal: AbortSignal): Promise<void> {
  const connection = new AbortController();
  const stop = () => connection.abort();
  signal.addEventListener('abort', stop, { once: true });
  let silence: ReturnType<typeof setTimeout> | undefined;
  const heard = () => {
    clearTimeout(silence);
    silence = setTimeout(stop, SILENCE_MS);
  };
  try {
    heard();
    let response: Response;
    try {
      response = await fetch('/admin/live', { headers: { accept: 'text/event-stream', ...session.authorizationHeader() }, signal: connection.signal, cache: 'no-store' });
    } catch {
      throw new StreamError('the dashboard server cannot be reached');
    }
    if (!response.ok || !response.body) throw new StreamError(`the server answered HTTP ${response.status}`, response.status);
    handlers.onState('live', {});
    const parser = createParser({
      onEvent(message) {
        const event = parseEvent(message);
        if (event) handlers.onEvent(event);
      },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        heard();
        parser.feed(value);
      }
    } catch {
      if (signal.aborted) return;
      throw new StreamError(connection.signal.aborted ? 'no news from the server for a while' : 'the connection broke');
    }
  } finally {
    clearTimeout(silence);
    signal.removeEventListener('abort', stop);
  }
}

/** Keeps the live stream open until `signal` aborts. */
export async function followLiveUpdates(session: OperatorSessionKeeper, handlers: LiveHandlers, signal: AbortSignal): Promise<void> {
  let failures = 0;
  let first = true;
  /** Whether the last 401 was already answered with a refresh (a second one backs off instead). */
  let refreshedForThis = false;
  while (!signal.aborted) {
    if (first) handlers.onState('connecting', {});
    first = false;
    let error = 'the server closed the stream';
    const started = Date.now();
    try {
      await readOnce(session, handlers, signal);
      failures = 0;
      refreshedForThis = false;
    } catch (caught) {
      // A connection that held for a while starts the backoff afresh; one that keeps dropping does not.
      if (Date.now() - started > STABLE_MS) failures = 0;
      const status = caught instanceof StreamError ? caught.status : 0;
      error = caught instanceof Error ? caught.message : String(caught);
      if (status !== 401) refreshedForThis = false;
      if (status === 401 && !refreshedForThis) {
        // An expired access token: refresh and reconnect at once; a refused refresh signs out.
        refreshedForThis = true;
        if (await session.refresh()) continue;
        break;
      }
      if (status === 403) {
        handlers.onState('stopped', { error: 'this account is not an operator' });
        return;
      }
      failures++;
    }
    if (signal.aborted) break;
    const backoff = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(failures - 1, 0));
    const retryInMs = Math.round(backoff * (0.5 + Math.random() / 2));
    handlers.onState('reconnecting', { retryInMs, error });
    await wait(retryInMs, signal);
  }
  handlers.onState('stopped', {});
}
