/**
 * When `npm start` restarts a service that exited without being asked to, and when it gives up.
 *
 * The rule, in order:
 * 1. Exit status 78 (EX_CONFIG, from `loadConfigOrExit`): give up. The configuration is the same on
 *    every restart, so the service would fail the same way.
 * 2. The service has never been ready since the launcher started: give up. A first start that ends
 *    before `/health/ready` answered (bad configuration, Redis unreachable, a port in use, a bug at
 *    start-up) would fail again; its own output above says why, and the next `npm start` retries.
 * 3. It already restarted {@link MAX_RESTARTS_PER_WINDOW} times within the last
 *    {@link RESTART_WINDOW_MS}: give up (a crash loop), keep the other services running.
 * 4. Otherwise restart after an exponential backoff: 1 s, 2 s, 4 s, 8 s, 16 s for the 1st…5th
 *    restart within the window, so a service that crashes once in a while restarts after 1 s.
 * A restart that dies before it is ready again (say Redis went away) counts as a crash under 3 and 4.
 */

/** How a process ended: exactly one of the two is set (Node's `exit` event). */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What the launcher knows about a service when one of its processes exits unexpectedly. */
export interface RestartHistory {
  /** Whether any of its processes ever answered `/health/ready`. */
  everReady: boolean;
  /** When each earlier restart happened (ms since the epoch). */
  restartTimes: readonly number[];
}

/** What to do after an unexpected exit. */
export type AfterExit = { action: 'restart'; delayMs: number } | { action: 'give up'; reason: string };

/** Exit status of a service whose environment failed validation (`loadConfigOrExit`). */
export const EXIT_INVALID_CONFIG = 78;
/** Restarts allowed within {@link RESTART_WINDOW_MS}; one more crash gives up on the service. */
export const MAX_RESTARTS_PER_WINDOW = 5;
/** The window restarts are counted in. */
export const RESTART_WINDOW_MS = 60_000;
/** Backoff before the first restart within the window; doubled for each further one. */
export const FIRST_BACKOFF_MS = 1_000;

/** "exited with code 1", "was killed by SIGKILL", "exited with code 78 (invalid configuration)". */
export function describeExit(exit: ProcessExit): string {
  if (exit.signal) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.code}${exit.code === EXIT_INVALID_CONFIG ? ' (invalid configuration)' : ''}`;
}

/** Applies the rule above to one unexpected exit at time `now`. */
export function decideAfterExit(exit: ProcessExit, history: RestartHistory, now: number): AfterExit {
  if (exit.code === EXIT_INVALID_CONFIG) {
    return { action: 'give up', reason: `${describeExit(exit)}: fix the variable named in its output` };
  }
  if (!history.everReady) {
    return { action: 'give up', reason: `${describeExit(exit)} before it was ever ready: see its output` };
  }
  const recent = history.restartTimes.filter((time) => now - time < RESTART_WINDOW_MS).length;
  if (recent >= MAX_RESTARTS_PER_WINDOW) {
    return { action: 'give up', reason: `${describeExit(exit)} after ${recent} restarts within ${RESTART_WINDOW_MS / 1000} s` };
  }
  return { action: 'restart', delayMs: FIRST_BACKOFF_MS * 2 ** recent };
}
