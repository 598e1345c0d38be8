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
   * On SIGTERM/SIGINT: run the steps and exit 0, or exit 1 after `timeoutMs` or on a second signal.
   */
  installSignalHandlers(): void {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
      this.logger.info({ signal }, 'shutting down');
      const timer = setTimeout(() => {
        this.logger.error({ timeoutMs: this.timeoutMs }, 'shutdown timed out');
        process.exit(1);
      }, this.timeoutMs);
      timer.unref();
      void this.run().then(() => {
        this.logger.info('stopped');
        process.exit(0);
      });
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
}
