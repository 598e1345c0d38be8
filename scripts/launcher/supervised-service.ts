/**
 * One service under `npm start`: runs its compiled `dist/main.js` with plain node in its workspace, prefixes its
 * output, watches `/health/ready`, restarts it after an unexpected exit as `restart-policy.ts`
 * decides, and stops it on request (SIGTERM, then SIGKILL after a grace period).
 *
 * Each process gets its own process group (`detached`), so Ctrl-C in the terminal reaches the
 * launcher only and the launcher alone decides what stops when: no service exits on the terminal's
 * SIGINT while the launcher would take that exit for a crash. Should the launcher die without
 * stopping them (SIGKILL, a crash), the services stop by themselves: their standard input ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { SERVICE_ENV, SERVICE_NODE_ARGS, STOP_WITH_LAUNCHER_VARIABLE } from '@civildiy/common';
import { pipeLines } from './prefixed-output.ts';
import { decideAfterExit, describeExit, type ProcessExit } from './restart-policy.ts';

/** How to run one service. */
export interface ServiceLaunch {
  name: string;
  /** Its workspace folder. */
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Answers 2xx once the service is ready. */
  readyUrl: string;
  /** Put in front of each line of its output. */
  outputPrefix: string;
}

/**
 * - `starting`: running, not ready yet; `ready`: its current process answered `/health/ready`;
 * - `restarting`: waiting out the backoff after a crash; `gave up`: not restarted any more;
 * - `stopped`: stopped on request; `killed`: stopped on request, but only by SIGKILL after the grace period.
 */
export type ServiceState = 'starting' | 'ready' | 'restarting' | 'gave up' | 'stopped' | 'killed';

/** A snapshot for the status table. */
export interface ServiceStatus {
  name: string;
  state: ServiceState;
  /** Of the current (or last) process. */
  pid: number | undefined;
  restarts: number;
  /** Why the launcher gave up on it. */
  gaveUpReason: string | undefined;
}

const READY_POLL_MS = 250;

export class SupervisedService {
  private state: ServiceState = 'starting';
  private child: ChildProcess | undefined;
  private pid: number | undefined;
  private closed: Promise<void> = Promise.resolve();
  private everReady = false;
  private readonly restartTimes: number[] = [];
  private backoff: NodeJS.Timeout | undefined;
  private stopRequested = false;
  private gaveUpReason: string | undefined;

  /**
   * @param report prints one line of the launcher's own (restarts, give-ups).
   * @param onChange called after every state change.
   */
  constructor(
    private readonly launch: ServiceLaunch,
    private readonly report: (line: string) => void,
    private readonly onChange: () => void,
  ) {}

  status(): ServiceStatus {
    const { name } = this.launch;
    return { name, state: this.state, pid: this.pid, restarts: this.restartTimes.length, gaveUpReason: this.gaveUpReason };
  }

  /** Starts a process of the service (the first one, or a restart). */
  start(): void {
    const child = spawn(process.execPath, [...SERVICE_NODE_ARGS, 'dist/main.js'], {
      cwd: this.launch.cwd,
      // Its standard input is a pipe the launcher never writes to: it ends when the launcher exits,
      // however it exits, and then the service stops too (`Shutdown.stopWhenStdinEnds`).
      env: { ...SERVICE_ENV, ...this.launch.env, [STOP_WITH_LAUNCHER_VARIABLE]: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.pid = child.pid;
    pipeLines(child.stdout!, process.stdout, this.launch.outputPrefix);
    pipeLines(child.stderr!, process.stderr, this.launch.outputPrefix);
    const readiness = new AbortController();
    let spawnError: Error | undefined;
    child.once('error', (error) => {
      spawnError = error;
    });
    // `close` (not `exit`): the process's last lines, such as why its configuration is invalid, are printed first.
    this.closed = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        readiness.abort();
        this.child = undefined;
        this.afterExit({ code, signal }, spawnError);
        resolve();
      });
    });
    if (this.pid !== undefined) this.report(`${this.launch.name} started (pid ${this.pid})`);
    this.setState('starting');
    void this.watchReadiness(readiness.signal);
  }

  /** SIGTERM to its process, SIGKILL after `graceMs`; resolves when it has exited. Cancels a pending restart. */
  async stop(graceMs: number): Promise<void> {
    this.stopRequested = true;
    clearTimeout(this.backoff);
    const child = this.child;
    if (!child) {
      if (this.state === 'restarting' || this.state === 'starting') this.setState('stopped');
      return;
    }
    child.kill('SIGTERM');
    const escalation = setTimeout(() => {
      this.report(`${this.launch.name} did not stop within ${graceMs / 1000} s: sending SIGKILL`);
      this.state = 'killed';
      child.kill('SIGKILL');
    }, graceMs);
    await this.closed;
    clearTimeout(escalation);
  }

  /** SIGKILL to its process now, if it runs (a second Ctrl-C, or the launcher itself exiting). */
  kill(): void {
    this.stopRequested = true;
    clearTimeout(this.backoff);
    this.child?.kill('SIGKILL');
  }

  private afterExit(exit: ProcessExit, spawnError: Error | undefined): void {
    const { name } = this.launch;
    if (this.stopRequested) {
      this.setState(this.state === 'killed' ? 'killed' : 'stopped');
      return;
    }
    const decision = spawnError
      ? { action: 'give up' as const, reason: `could not be started (${spawnError.message})` }
      : decideAfterExit(exit, { everReady: this.everReady, restartTimes: this.restartTimes }, Date.now());
    if (decision.action === 'give up') {
      this.gaveUpReason = decision.reason;
      this.report(`${name} ${decision.reason}. Not restarting it.`);
      this.setState('gave up');
      return;
    }
    this.restartTimes.push(Date.now());
    this.report(
      `${name} ${describeExit(exit)}; restarting it in ${decision.delayMs / 1000} s (restart ${this.restartTimes.length})`,
    );
    this.setState('restarting');
    this.backoff = setTimeout(() => this.start(), decision.delayMs);
  }

  private async watchReadiness(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const response = await fetch(this.launch.readyUrl, { signal: AbortSignal.any([signal, AbortSignal.timeout(1_000)]) });
        await response.body?.cancel();
        if (response.ok) {
          if (signal.aborted || this.stopRequested) return;
          this.everReady = true;
          if (this.restartTimes.length > 0) this.report(`${this.launch.name} is ready again (pid ${this.pid})`);
          this.setState('ready');
          return;
        }
      } catch {
        // Not listening yet, or the process ended (then `signal` is aborted).
      }
      await delay(READY_POLL_MS, undefined, { signal }).catch(() => undefined);
    }
  }

  private setState(state: ServiceState): void {
    this.state = state;
    this.onChange();
  }
}
