import { ServiceUnavailableError } from '../errors/index.ts';

/** Why a provider could not be used: it failed or was unreachable, or the circuit breaker is open. */
export type ProviderUnavailableCode = 'provider.unavailable' | 'provider.circuit_open';

/**
 * A provider could not serve the call: it answered 5xx, 408 or 429, did not answer within the
 * timeout, could not be reached, or its circuit breaker is open. Retryable: the task runtime retries
 * the job (with the same idempotency key, so the provider never acts twice). In an HTTP route it
 * maps to 503 with the same `code`.
 */
export class ProviderUnavailableError extends ServiceUnavailableError {
  /** Always true: retrying later may succeed. */
  readonly retryable = true;
  /** The provider's name (`payments`, `messaging`, `embeddings`). */
  readonly provider: string;
  /** The provider's HTTP status, when it answered. */
  readonly upstreamStatus?: number;
  /**
   * Set when the call was refused without trying (open circuit): how long until the circuit lets a
   * trial call through. The task runtime then delays the job that long without counting the attempt
   * (see `deferralOf` in `@civildiy/common/tasks`).
   */
  readonly deferMs?: number;

  constructor(
    provider: string,
    message: string,
    code: ProviderUnavailableCode = 'provider.unavailable',
    options: { upstreamStatus?: number; cause?: unknown; deferMs?: number } = {},
  ) {
    super(message, code, {
      details: { provider, ...(options.upstreamStatus === undefined ? {} : { upstreamStatus: options.upstreamStatus }) },
      cause: options.cause,
    });
    this.provider = provider;
    if (options.upstreamStatus !== undefined) this.upstreamStatus = options.upstreamStatus;
    if (options.deferMs !== undefined) this.deferMs = options.deferMs;
  }
}

/** Whether `error` is a {@link ProviderUnavailableError} (also across module copies, by name). */
export function isProviderUnavailableError(error: unknown): error is ProviderUnavailableError {
  return error instanceof ProviderUnavailableError || (error instanceof Error && error.name === 'ProviderUnavailableError');
}
