import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { Counter, Gauge, register, type Registry } from 'prom-client';
import { z } from 'zod';
import { currentContext } from '../context/index.ts';
import { PermanentError } from '../errors/index.ts';
import type { Logger } from '../logging/index.ts';
import { reuseMetric } from '../service/metrics.ts';
import { ProviderUnavailableError } from './provider-unavailable-error.ts';

/** Circuit breaker settings of a provider client (a cockatiel `ConsecutiveBreaker`). */
export interface CircuitBreakerOptions {
  /** Consecutive unavailable calls (5xx, 408, 429, timeout, network error) that open the circuit. Default: 5. */
  consecutiveFailures?: number;
  /** How long an open circuit refuses calls before letting one trial call through (half-open). Default: 10 000 ms. */
  halfOpenAfterMs?: number;
}

/** Options shared by every provider client. */
export interface ProviderClientOptions {
  /** The provider's base URL, e.g. `http://127.0.0.1:8003`. */
  baseUrl: string;
  /** Per-call timeout covering connect, headers and body, in ms. Default: 5 000. */
  timeoutMs?: number;
  /**
   * Circuit breaker around every call; only unavailability counts as a failure (never a decline or
   * another 4xx answer). `false` disables it. Default: `{ consecutiveFailures: 5, halfOpenAfterMs: 10_000 }`.
   */
  breaker?: CircuitBreakerOptions | false;
  /** Logs circuit state changes (warn/info) and unavailable calls (debug). Default: no logging. */
  logger?: Logger;
  /**
   * Where `civildiy_provider_calls_total{provider,outcome}` and `civildiy_provider_circuit_state{provider}`
   * (0 closed, 1 open, 2 half-open, 3 isolated) go. Default: prom-client's global registry.
   */
  metricsRegistry?: Registry;
}

/** Options of one {@link ProviderHttp.post} call. */
export interface ProviderPostOptions {
  /** Sent as `Idempotency-Key` (providers with side effects). Default: none. */
  idempotencyKey?: string;
  /** Cancels the call (the caller's deadline); the abort reason is rethrown. */
  signal?: AbortSignal;
  /** Extra headers, e.g. `authorization`. Never logged. */
  headers?: Record<string, string>;
}

/** The state of a client's circuit breaker. */
export type CircuitStateName = 'closed' | 'open' | 'half_open' | 'isolated';

/** A provider's answer that is not unavailability (2xx, and 4xx other than 408/429): the client classifies it. */
export interface ProviderAnswer {
  status: number;
  /** The parsed JSON body, or the raw text when it is not JSON, or `undefined` when empty. */
  body: unknown;
}

const STATE_NAMES: Record<CircuitState, CircuitStateName> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half_open',
  [CircuitState.Isolated]: 'isolated',
};

/** Statuses meaning "try again later" rather than "this request is wrong". */
const RETRYABLE_CLIENT_STATUSES = new Set([408, 429]);

const ErrorEnvelope = z.looseObject({
  error: z.looseObject({
    code: z.string().nullish(),
    type: z.string().optional(),
    message: z.string().optional(),
    details: z.unknown().optional(),
  }),
});

/**
 * The error of an answer, when it has one: ours `{ error: { code, message, details? } }` or OpenAI's
 * `{ error: { message, type, code } }` (whose `code` may be null: then `type` is the code).
 */
export function errorOf(answer: ProviderAnswer): { code: string; message?: string; details?: unknown } | undefined {
  const parsed = ErrorEnvelope.safeParse(answer.body);
  if (!parsed.success) return undefined;
  const { code, type, message, details } = parsed.data.error;
  const stable = code ?? type;
  if (stable === undefined) return undefined;
  return { code: stable, ...(message === undefined ? {} : { message }), ...(details === undefined ? {} : { details }) };
}

/**
 * A {@link PermanentError} for a provider answer that retrying cannot change (a 4xx other than the
 * outcomes a client maps to results). `details`: `{ provider, status, providerCode?, providerMessage? }`.
 */
export function providerRejection(provider: string, answer: ProviderAnswer, code = 'provider.rejected'): PermanentError {
  const error = errorOf(answer);
  const what = error ? `${answer.status} ${error.code}${error.message ? `: ${error.message}` : ''}` : String(answer.status);
  return new PermanentError(`The ${provider} provider rejected the call (${what})`, code, {
    details: {
      provider,
      status: answer.status,
      ...(error ? { providerCode: error.code } : {}),
      ...(error?.message ? { providerMessage: error.message } : {}),
    },
  });
}

/** A {@link PermanentError} for a 2xx answer whose body is not what the provider documents. */
export function unexpectedAnswer(provider: string, answer: ProviderAnswer, problem: string): PermanentError {
  return new PermanentError(`The ${provider} provider answered ${answer.status} with an unexpected body: ${problem}`, 'provider.bad_response', {
    details: { provider, status: answer.status },
  });
}

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The HTTP layer every provider client shares: JSON over global `fetch` with a per-call timeout
 * (`AbortSignal.any([timeout, caller signal])`), the `Idempotency-Key` (when given), `X-Request-ID`
 * and caller headers, a circuit breaker counting only unavailability, and metrics. It throws
 * {@link ProviderUnavailableError} for unavailability, rethrows the caller's abort reason when the
 * caller cancelled, and returns every other answer for the client to classify.
 */
export class ProviderHttp {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly breaker: CircuitBreakerPolicy | undefined;
  private halfOpenAfterMs = 10_000;
  /** When the circuit last opened (`Date.now()`). */
  private openedAt = 0;
  private readonly calls: Counter<'provider' | 'outcome'>;

  constructor(
    /** The provider's name in errors, logs and metrics. */
    readonly provider: string,
    private readonly options: ProviderClientOptions,
  ) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 5_000;
    const registry = options.metricsRegistry ?? register;
    this.calls = reuseMetric(
      registry,
      'civildiy_provider_calls_total',
      () =>
        new Counter({
          name: 'civildiy_provider_calls_total',
          help: 'Calls to external providers by outcome',
          labelNames: ['provider', 'outcome'] as const,
          registers: [registry],
        }),
    );
    const circuitGauge = reuseMetric(
      registry,
      'civildiy_provider_circuit_state',
      () =>
        new Gauge({
          name: 'civildiy_provider_circuit_state',
          help: 'Circuit breaker state per provider: 0 closed, 1 open, 2 half-open, 3 isolated',
          labelNames: ['provider'] as const,
          registers: [registry],
        }),
    );
    if (options.breaker === false) return;
    this.halfOpenAfterMs = options.breaker?.halfOpenAfterMs ?? 10_000;
    this.breaker = circuitBreaker(
      handleWhen((error) => error instanceof ProviderUnavailableError),
      {
        halfOpenAfter: this.halfOpenAfterMs,
        breaker: new ConsecutiveBreaker(options.breaker?.consecutiveFailures ?? 5),
      },
    );
    circuitGauge.set({ provider }, CircuitState.Closed);
    this.breaker.onBreak(() => {
      this.openedAt = Date.now();
    });
    this.breaker.onStateChange((state) => {
      circuitGauge.set({ provider }, state);
      const fields = { provider, circuit: STATE_NAMES[state] };
      if (state === CircuitState.Open) options.logger?.warn(fields, `circuit to the ${provider} provider opened: calls fail fast`);
      else options.logger?.info(fields, `circuit to the ${provider} provider is ${STATE_NAMES[state]}`);
    });
  }

  /** The circuit breaker's state (`closed` when there is no breaker). */
  get circuitState(): CircuitStateName {
    return this.breaker ? STATE_NAMES[this.breaker.state] : 'closed';
  }

  /** Counts one call's outcome in `civildiy_provider_calls_total`. */
  record(outcome: string): void {
    this.calls.inc({ provider: this.provider, outcome });
  }

  /**
   * POSTs `body` as JSON to `path` through the circuit breaker, with `options.headers`, the
   * `Idempotency-Key` when given and the current correlation id as `X-Request-ID`.
   * @throws ProviderUnavailableError on 5xx, 408, 429, timeout, network error (`provider.unavailable`)
   *   or an open circuit (`provider.circuit_open`).
   * @throws the caller's `signal.reason` when the caller aborted.
   */
  async post(path: string, body: unknown, options: ProviderPostOptions = {}): Promise<ProviderAnswer> {
    const call = () => this.send(path, body, options);
    if (!this.breaker) return call();
    try {
      return await this.breaker.execute(call);
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        this.record('circuit_open');
        // Until the circuit lets a trial call through (at least 1 s: a trial may be running now).
        const deferMs = Math.max(1_000, this.openedAt + this.halfOpenAfterMs - Date.now());
        throw new ProviderUnavailableError(this.provider, `The circuit to the ${this.provider} provider is open; not calling it`, 'provider.circuit_open', {
          cause: error,
          deferMs: Math.min(deferMs, this.halfOpenAfterMs),
        });
      }
      throw error;
    }
  }

  private async send(path: string, body: unknown, options: ProviderPostOptions): Promise<ProviderAnswer> {
    const callerSignal = options.signal;
    callerSignal?.throwIfAborted();
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const headers: Record<string, string> = {
      ...options.headers,
      'content-type': 'application/json',
      accept: 'application/json',
    };
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    const correlationId = currentContext()?.correlationId;
    if (correlationId) headers['x-request-id'] = correlationId;

    let status: number;
    let text: string;
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: callerSignal ? AbortSignal.any([timeout, callerSignal]) : timeout,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      if (callerSignal?.aborted && !timeout.aborted) {
        this.record('cancelled');
        throw callerSignal.reason;
      }
      const timedOut = timeout.aborted;
      this.record(timedOut ? 'timeout' : 'unreachable');
      const reason = timedOut
        ? `no answer within ${this.timeoutMs} ms`
        : `unreachable (${error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error)})`;
      this.options.logger?.debug({ provider: this.provider, path, err: error }, `${this.provider} provider ${reason}`);
      throw new ProviderUnavailableError(this.provider, `The ${this.provider} provider is unavailable: ${reason}`, 'provider.unavailable', { cause: error });
    }

    const answer: ProviderAnswer = { status, body: parseBody(text) };
    if (status >= 500 || RETRYABLE_CLIENT_STATUSES.has(status)) {
      this.record('server_error');
      const error = errorOf(answer);
      this.options.logger?.debug({ provider: this.provider, path, status, providerCode: error?.code }, `${this.provider} provider answered ${status}`);
      throw new ProviderUnavailableError(
        this.provider,
        `The ${this.provider} provider is unavailable: it answered ${status}${error ? ` ${error.code}` : ''}`,
        'provider.unavailable',
        { upstreamStatus: status },
      );
    }
    return answer;
  }
}
