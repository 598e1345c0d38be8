import { z } from 'zod';
import { PermanentError } from '../errors/index.ts';
import { ProviderHttp, providerRejection, unexpectedAnswer, type CircuitStateName, type ProviderAnswer, type ProviderClientOptions } from './provider-http.ts';

/** Options of {@link EmbeddingsClient}. */
export interface EmbeddingsClientOptions extends ProviderClientOptions {
  /** The model to ask for (`EMBEDDINGS_MODEL`), e.g. `civildiy-hash-embed-1` (the mock) or `text-embedding-3-small`. */
  model: string;
  /** Sent as `Authorization: Bearer <apiKey>` (`EMBEDDINGS_API_KEY`). Default: no `Authorization` header. */
  apiKey?: string;
  /**
   * The expected vector length (`EMBEDDINGS_DIMENSIONS`): sent as the request's `dimensions`, and an
   * answer of another length is rejected. Default: not sent, and any one length is accepted.
   */
  dimensions?: number;
}

/** The vectors of one {@link EmbeddingsClient.embed} call. */
export interface EmbeddingsResult {
  /** The model the provider says it used (the requested one when the answer names none). */
  model: string;
  /** The length of every vector. */
  dimensions: number;
  /** One vector per text, in input order. */
  vectors: number[][];
}

const EmbeddingsAnswer = z.looseObject({
  data: z.array(z.looseObject({ index: z.number().int(), embedding: z.union([z.array(z.unknown()), z.string()]) })),
  model: z.string().min(1).optional(),
});

const PROVIDER = 'embeddings';

/** A {@link PermanentError} for a 2xx answer that does not hold what was asked for. */
function invalidAnswer(answer: ProviderAnswer, code: string, problem: string, details: Record<string, unknown> = {}): PermanentError {
  return new PermanentError(`The ${PROVIDER} provider answered ${answer.status} with unusable embeddings: ${problem}`, code, {
    details: { provider: PROVIDER, status: answer.status, ...details },
  });
}

/** Little-endian float32 values from OpenAI's `encoding_format: base64`, or `undefined` when malformed. */
function decodeBase64(text: string): number[] | undefined {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0) return undefined;
  const values = new Array<number>(bytes.length / 4);
  for (let i = 0; i < values.length; i += 1) values[i] = bytes.readFloatLE(i * 4);
  return values;
}

/**
 * Typed client of an OpenAI-compatible embeddings API (`POST /v1/embeddings`): the mock provider,
 * a hosted API or a local model server. Classification:
 * - 2xx with one vector per text, indexes `0..n-1`, one length (the configured one, when set) and
 *   only finite numbers → {@link EmbeddingsResult} (vectors sorted by `index`, i.e. in input order);
 * - any other 2xx → `PermanentError`: `provider.count_mismatch` (wrong count, indexes not `0..n-1`),
 *   `provider.dimension_mismatch` (another length than configured, or mixed lengths),
 *   `provider.invalid_vector` (empty vector, non-finite or non-numeric values),
 *   `provider.bad_response` (not the documented body);
 * - 4xx (bad input, 401 bad key, 413 too large) → `PermanentError` `provider.rejected` (408 and 429 excepted);
 * - 5xx, 408, 429, timeout, network error → `ProviderUnavailableError` `provider.unavailable` (retryable);
 * - open circuit → `ProviderUnavailableError` `provider.circuit_open` (retryable).
 *
 * ```ts
 * const embeddings = new EmbeddingsClient({ baseUrl: env.EMBEDDINGS_URL, model: env.EMBEDDINGS_MODEL, apiKey: env.EMBEDDINGS_API_KEY, dimensions: 256, logger });
 * const { vectors } = await embeddings.embed(['raised cedar garden bed'], { signal: ctx.signal });
 * ```
 */
export class EmbeddingsClient {
  private readonly http: ProviderHttp;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: EmbeddingsClientOptions) {
    this.http = new ProviderHttp(PROVIDER, options);
    this.headers = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  }

  /** The circuit breaker's state. */
  get circuitState(): CircuitStateName {
    return this.http.circuitState;
  }

  /**
   * Embeds `texts` in one call (at most the provider's limit per request; OpenAI's is 2048). No
   * texts → no call, and an empty result with the configured dimension (0 when none is configured).
   * The answer is checked (count, indexes, dimension, finite numbers) before it is returned.
   * @param options.signal - cancels the call (the caller's deadline); its abort reason is rethrown.
   * @throws ProviderUnavailableError (`provider.unavailable`, `provider.circuit_open`) when a retry later may succeed.
   * @throws PermanentError (`provider.rejected`, `provider.count_mismatch`, `provider.dimension_mismatch`,
   *   `provider.invalid_vector`, `provider.bad_response`) when retrying cannot help.
   */
  async embed(texts: string[], options: { signal?: AbortSignal } = {}): Promise<EmbeddingsResult> {
    const { model, dimensions } = this.options;
    if (texts.length === 0) return { model, dimensions: dimensions ?? 0, vectors: [] };
    const body = { model, input: texts, ...(dimensions === undefined ? {} : { dimensions }) };
    const answer = await this.http.post('/v1/embeddings', body, { headers: this.headers, ...(options.signal ? { signal: options.signal } : {}) });

    if (answer.status < 200 || answer.status >= 300) {
      this.http.record('rejected');
      throw providerRejection(PROVIDER, answer);
    }
    try {
      const result = this.validated(answer, texts.length);
      this.http.record('embedded');
      return result;
    } catch (error) {
      this.http.record('bad_response');
      throw error;
    }
  }

  private validated(answer: ProviderAnswer, count: number): EmbeddingsResult {
    const parsed = EmbeddingsAnswer.safeParse(answer.body);
    if (!parsed.success) throw unexpectedAnswer(PROVIDER, answer, 'no list of embeddings');
    const data = parsed.data.data;
    if (data.length !== count) {
      throw invalidAnswer(answer, 'provider.count_mismatch', `${data.length} embeddings for ${count} texts`, { expected: count, received: data.length });
    }
    const sorted = [...data].sort((a, b) => a.index - b.index);
    sorted.forEach((item, position) => {
      if (item.index !== position) throw invalidAnswer(answer, 'provider.count_mismatch', `the indexes are not 0..${count - 1}`, { index: item.index });
    });

    const expected = this.options.dimensions;
    let dimensions: number | undefined;
    const vectors = sorted.map(({ embedding, index }) => {
      const vector = typeof embedding === 'string' ? decodeBase64(embedding) : embedding;
      if (vector === undefined) throw invalidAnswer(answer, 'provider.invalid_vector', `the embedding at index ${index} is not valid base64 float32`, { index });
      if (vector.length === 0) throw invalidAnswer(answer, 'provider.invalid_vector', `the embedding at index ${index} is empty`, { index });
      dimensions ??= vector.length;
      if (expected !== undefined && vector.length !== expected) {
        throw invalidAnswer(answer, 'provider.dimension_mismatch', `vectors of ${vector.length} dimensions, ${expected} expected`, { index, expected, received: vector.length });
      }
      if (vector.length !== dimensions) {
        throw invalidAnswer(answer, 'provider.dimension_mismatch', `vectors of ${dimensions} and ${vector.length} dimensions in one answer`, { index, expected: dimensions, received: vector.length });
      }
      for (const value of vector) {
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          throw invalidAnswer(answer, 'provider.invalid_vector', `the embedding at index ${index} holds ${String(value)}`, { index });
        }
      }
      return vector as number[];
    });
    return { model: parsed.data.model ?? this.options.model, dimensions: dimensions!, vectors };
  }
}
