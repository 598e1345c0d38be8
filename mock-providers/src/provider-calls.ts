import { ConflictError, ValidationError } from '@civildiy/common';
import { reuseMetric } from '@civildiy/common/service';
import { Counter, register, type Registry } from 'prom-client';
import { FaultInjector, NO_FAULTS, type FaultSettings } from './faults.ts';
import { IdempotencyStore, type StoredAnswer } from './idempotency.ts';

/** Longest accepted `Idempotency-Key` (Stripe's limit). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** Counters every provider reports at `GET /_admin/stats`. */
export interface CallStats {
  /** Calls to the provider's side-effecting endpoint, valid or not. */
  callsReceived: number;
  /** Calls answered with an injected 500/503. */
  failuresInjected: number;
  /** Calls answered with a stored answer (`Idempotent-Replayed: true`). */
  idempotentReplays: number;
  /** Calls refused with 409 `idempotency_key_reused`. */
  keyConflicts: number;
}

/** A call answered with an injected 500/503 instead of running. */
export interface InjectedFailure {
  kind: 'injected_failure';
  status: 500 | 503;
}

/** What became of one idempotent call. */
export type CallResult = InjectedFailure | { kind: 'answered'; idempotencyKey: string; answer: StoredAnswer; replayed: boolean };

/** What became of one call without side effects. */
export type PureCallResult<T> = InjectedFailure | { kind: 'answered'; value: T };

const emptyStats = (): CallStats => ({ callsReceived: 0, failuresInjected: 0, idempotentReplays: 0, keyConflicts: 0 });

/**
 * What every side-effecting call of a provider goes through, in this order: it is counted; its
 * `Idempotency-Key` is required; the configured latency passes; an injected failure may answer it
 * (before any effect, and never stored); otherwise it runs once per key (see {@link IdempotencyStore}).
 * Calls without side effects (embeddings) skip the key and the store: see {@link ProviderCalls.run}.
 */
export class ProviderCalls {
  readonly faults: FaultInjector;
  private readonly idempotency = new IdempotencyStore();
  private counts = emptyStats();
  private readonly outcomes: Counter<'provider' | 'outcome'>;

  constructor(
    readonly provider: string,
    options: { seed: number; faults?: FaultSettings; metricsRegistry?: Registry },
  ) {
    this.faults = new FaultInjector(options.seed, options.faults ?? NO_FAULTS);
    const registry = options.metricsRegistry ?? register;
    this.outcomes = reuseMetric(
      registry,
      'civildiy_mock_provider_calls_total',
      () =>
        new Counter({
          name: 'civildiy_mock_provider_calls_total',
          help: 'Calls to the mock providers by outcome (succeeded, declined, delivered, rejected, replayed, embedded, unauthorized, injected_failure, key_conflict, missing_key)',
          labelNames: ['provider', 'outcome'] as const,
          registers: [registry],
        }),
    );
  }

  /** A route `onRequest` hook counting the call as received. */
  readonly countReceived = async (): Promise<void> => {
    this.counts.callsReceived += 1;
  };

  /**
   * Runs one call.
   * @throws ValidationError `idempotency_key_required` / `idempotency_key_invalid` (400).
   * @throws ConflictError `idempotency_key_reused` (409).
   */
  async handle(keyHeader: string | string[] | undefined, request: unknown, execute: (idempotencyKey: string) => StoredAnswer): Promise<CallResult> {
    const key = this.requireKey(keyHeader);
    const failure = await this.injectFault();
    if (failure) return failure;
    try {
      const { answer, replayed } = await this.idempotency.run(key, request, () => execute(key));
      if (replayed) this.counts.idempotentReplays += 1;
      this.outcomes.inc({ provider: this.provider, outcome: replayed ? 'replayed' : answer.outcome });
      return { kind: 'answered', idempotencyKey: key, answer, replayed };
    } catch (error) {
      if (error instanceof ConflictError) {
        this.counts.keyConflicts += 1;
        this.outcomes.inc({ provider: this.provider, outcome: 'key_conflict' });
      }
      throw error;
    }
  }

  /**
   * Runs one call that has no side effect (nothing to make idempotent): the configured latency
   * passes, an injected failure may answer it, otherwise `execute` runs and counts as `outcome`
   * once it has succeeded (what it throws is the caller's to answer).
   */
  async run<T>(outcome: string, execute: () => T | Promise<T>): Promise<PureCallResult<T>> {
    const failure = await this.injectFault();
    if (failure) return failure;
    const value = await execute();
    this.outcomes.inc({ provider: this.provider, outcome });
    return { kind: 'answered', value };
  }

  /** Counts a call refused before it ran (e.g. `unauthorized`) in the metrics. */
  countRefused(outcome: string): void {
    this.outcomes.inc({ provider: this.provider, outcome });
  }

  /** The counters since start or the last reset. */
  stats(): CallStats {
    return { ...this.counts };
  }

  /** Forgets every idempotency key, zeroes the counters and removes every fault. */
  reset(): void {
    this.idempotency.clear();
    this.counts = emptyStats();
    this.faults.reset();
  }

  private async injectFault(): Promise<InjectedFailure | undefined> {
    const fault = await this.faults.beforeCall();
    if (!fault.fail) return undefined;
    this.counts.failuresInjected += 1;
    this.outcomes.inc({ provider: this.provider, outcome: 'injected_failure' });
    return { kind: 'injected_failure', status: fault.status };
  }

  private requireKey(header: string | string[] | undefined): string {
    const key = (Array.isArray(header) ? header[0] : header)?.trim();
    if (!key) {
      this.outcomes.inc({ provider: this.provider, outcome: 'missing_key' });
      throw new ValidationError('The Idempotency-Key header is required', 'idempotency_key_required');
    }
    if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
      this.outcomes.inc({ provider: this.provider, outcome: 'missing_key' });
      throw new ValidationError(`The Idempotency-Key header is longer than ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`, 'idempotency_key_invalid');
    }
    return key;
  }
}
