import type { EventEmitter } from 'node:events';
import pino from 'pino';
import { STOP_WITH_LAUNCHER_VARIABLE } from '../config/launcher-contract.ts';
import type { Logger } from '../logging/index.ts';

/** One step of an ordered shutdown. */
export interface ShutdownStep {
  name: string;
  close: () => Promise<unknown> | unknown;
}

/**
 * Ordered, bounded shutdown. Steps run one after another in the REVERSE order they were added: what
 * was started last stops first. A `main.ts` opens the database, then connections, then consumers,
 * then listens — so the HTTP server closes first and the database last.
 */
export class Shutdown {
  private readonly steps: ShutdownStep[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly timeoutMs = 10_000,
  ) {}

  /** Adds a step, run before the steps added before it. */
  add(name: string, close: ShutdownStep['close']): void {
    this.steps.push({ name, close });
  }

  /** Runs every step once (later calls return the same promise). A failing step is logged, the rest still run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of [...this.steps].reverse()) {
        try {
          await step.close();
        } catch (error) {
          this.logger.error({ err: error, step: step.name }, 'shutdown step failed');
        }
      }
    })();
    return this.running;
  }

  /**
   * On SIGTERM/SIGINT: run the steps and exit 0, or exit 1 after `timeoutMs`. A second signal more
   * than 2 s after the first forces exit 1; one sooner is ignored, because a service run straight
   * from a terminal can get one Ctrl-C twice (from the terminal and from npm or tsx forwarding it).
   * Under `npm start` each service has its own process group and gets one SIGTERM from the launcher,
   * and stops as well when the launcher is gone ({@link stopWhenStdinEnds}).
   */
  installSignalHandlers(): void {
    process.on('SIGTERM', (signal) => this.begin(signal));
    process.on('SIGINT', (signal) => this.begin(signal));
    if (process.env[STOP_WITH_LAUNCHER_VARIABLE] === '1') this.stopWhenStdinEnds();
  }

  /**
   * Shuts down, as on SIGTERM, when standard input ends. The launcher (`npm start`) gives each
   * service a pipe as its standard input and sets {@link STOP_WITH_LAUNCHER_VARIABLE}: the pipe
   * ends when the launcher exits, however it exits (even by SIGKILL), so no service outlives it.
   */
  stopWhenStdinEnds(): void {
    const launcherGone = (how: string) => {
      this.stopLogging();
      this.begin(`standard input ${how} (the launcher is gone)`);
    };
    process.stdin.on('end', () => launcherGone('ended'));
    process.stdin.on('error', () => launcherGone('failed'));
    process.stdin.resume();
  }

  /**
   * The launcher read the service's output: with it gone, every write to stdout fails (EPIPE).
   * Pino stops writing when its stream reports EPIPE; it is told so now, before the shutdown logs,
   * because a fatal line would otherwise flush synchronously and retry the broken write forever
   * (sonic-boom 4's `flushSync` sleeps and retries on any error), and the process would never exit.
   */
  private stopLogging(): void {
    const stream = (this.logger as unknown as Record<symbol, EventEmitter | undefined>)[pino.symbols.streamSym];
    if (stream && stream.listenerCount('error') > 0) stream.emit('error', Object.assign(new Error('the launcher is gone'), { code: 'EPIPE' }));
  }

  private firstSignalAt: number | undefined;

  private begin(reason: string): void {
    if (this.firstSignalAt !== undefined) {
      if (Date.now() - this.firstSignalAt < 2_000) return;
      this.logger.warn({ reason }, 'second signal: exiting now');
      process.exit(1);
    }
    this.firstSignalAt = Date.now();
    this.logger.info({ reason }, 'shutting down');
    const timer = setTimeout(() => {
      this.logger.error({ timeoutMs: this.timeoutMs }, 'shutdown timed out');
      process.exit(1);
    }, this.timeoutMs);
    timer.unref();
    void this.run().then(() => {
      this.logger.info('stopped');
      process.exit(0);
    });
  }
}
