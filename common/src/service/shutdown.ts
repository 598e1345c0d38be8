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
   * Under `npm start` each service has its own process group and gets one SIGTERM from the launcher.
   */
  installSignalHandlers(): void {
    let firstSignalAt: number | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      if (firstSignalAt !== undefined) {
        if (Date.now() - firstSignalAt < 2_000) return;
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      firstSignalAt = Date.now();
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
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
}
