import { PermanentError, runWithContext } from '@civildiy/common';
import { EmbeddingsClient, ProviderUnavailableError, type EmbeddingsClientOptions } from '@civildiy/common/providers';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

// The EmbeddingsClient's checks of answers the mock provider never gives (wrong count, mixed
// dimensions, NaN...), against a scripted stand-in server written here. The contract against the
// real mock is in clients-contract.test.ts.

interface Step {
  status: number;
  body?: unknown;
  /** Answer only after this long. */
  delayMs?: number;
}

const script: Step[] = [];
const received: { headers: Record<string, unknown>; body: Record<string, unknown> }[] = [];
let server: FastifyInstance;
let baseUrl: string;

/** An OpenAI answer with these vectors at these indexes (default 0..n-1). */
const answer = (vectors: unknown[], indexes = vectors.map((_, i) => i), model = 'scripted-model'): Step => ({
  status: 200,
  body: { object: 'list', data: vectors.map((embedding, i) => ({ object: 'embedding', index: indexes[i], embedding })), model, usage: { prompt_tokens: 1, total_tokens: 1 } },
});

beforeAll(async () => {
  server = Fastify({ forceCloseConnections: true });
  server.post('/v1/embeddings', async (request, reply) => {
    received.push({ headers: request.headers, body: request.body as Record<string, unknown> });
    const step = script.shift() ?? answer([[1, 0]]);
    if (step.delayMs) await new Promise((resolve) => setTimeout(resolve, step.delayMs));
    // A string body goes out as it is (raw JSON, or not JSON at all).
    if (typeof step.body === 'string') reply.type(step.body.startsWith('{') ? 'application/json' : 'text/plain');
    return reply.status(step.status).send(step.body);
  });
  baseUrl = await server.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  script.length = 0;
  received.length = 0;
});

const client = (options: Partial<EmbeddingsClientOptions> = {}) =>
  new EmbeddingsClient({ baseUrl, model: 'text-embedding-3-small', dimensions: 2, timeoutMs: 1_000, metricsRegistry: new Registry(), ...options });

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

describe('EmbeddingsClient (scripted stand-in server)', () => {
  it('sends the model, the texts, the dimensions and the key (no idempotency key), and sorts the vectors by index', async () => {
    script.push(answer([[0, 1], [1, 0], [0.6, 0.8]], [2, 0, 1]));
    const result = await runWithContext({ correlationId: 'corr-embed' }, () => client({ apiKey: 'sk-1' }).embed(['a', 'b', 'c']));
    expect(result).toEqual({ model: 'scripted-model', dimensions: 2, vectors: [[1, 0], [0.6, 0.8], [0, 1]] });
    expect(received[0]!.body).toEqual({ model: 'text-embedding-3-small', input: ['a', 'b', 'c'], dimensions: 2 });
    expect(received[0]!.headers).toMatchObject({ authorization: 'Bearer sk-1', 'x-request-id': 'corr-embed' });
    expect(received[0]!.headers['idempotency-key']).toBeUndefined();
  });

  it('sends no dimensions and no Authorization when none are configured, and takes the answer’s dimension', async () => {
    script.push(answer([[1, 0, 0]]));
    expect((await client({ dimensions: undefined }).embed(['a'])).dimensions).toBe(3);
    expect(received[0]!.body).toEqual({ model: 'text-embedding-3-small', input: ['a'] });
    expect(received[0]!.headers.authorization).toBeUndefined();
  });

  it('decodes base64 float32 embeddings and falls back to the requested model when the answer names none', async () => {
    const bytes = Buffer.alloc(8);
    bytes.writeFloatLE(0.5, 0);
    bytes.writeFloatLE(-0.25, 4);
    script.push({ status: 200, body: { data: [{ index: 0, embedding: bytes.toString('base64') }] } });
    expect(await client().embed(['a'])).toEqual({ model: 'text-embedding-3-small', dimensions: 2, vectors: [[0.5, -0.25]] });
  });

  it('makes no call for no texts', async () => {
    expect(await client().embed([])).toEqual({ model: 'text-embedding-3-small', dimensions: 2, vectors: [] });
    expect(received).toHaveLength(0);
  });

  it.each([
    ['fewer vectors than texts', answer([[1, 0]]), 'provider.count_mismatch'],
    ['more vectors than texts', answer([[1, 0], [0, 1], [1, 1]]), 'provider.count_mismatch'],
    ['a repeated index', answer([[1, 0], [0, 1]], [0, 0]), 'provider.count_mismatch'],
    ['indexes from 1', answer([[1, 0], [0, 1]], [1, 2]), 'provider.count_mismatch'],
    ['vectors of another dimension than configured', answer([[1, 0, 0], [0, 1, 0]]), 'provider.dimension_mismatch'],
    ['vectors of mixed dimensions', answer([[1, 0], [0, 1, 0]]), 'provider.dimension_mismatch'],
    ['a null in a vector', answer([[1, null], [0, 1]]), 'provider.invalid_vector'],
    ['a string in a vector', answer([[1, '0'], [0, 1]]), 'provider.invalid_vector'],
    ['an empty vector', answer([[], []]), 'provider.invalid_vector'],
    ['base64 that is not float32', answer(['AAA=', [0, 1]]), 'provider.invalid_vector'],
    ['no data list', { status: 200, body: { object: 'list' } }, 'provider.bad_response'],
    ['a body that is not JSON', { status: 200, body: 'hello' }, 'provider.bad_response'],
  ])('throws PermanentError for an answer with %s', async (_case, step, code) => {
    script.push(step);
    const error = await failure(client().embed(['a', 'b']));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code, details: { provider: 'embeddings', status: 200 } });
  });

  it('throws PermanentError provider.invalid_vector for a number too large for a double (JSON 1e400 parses to Infinity)', async () => {
    script.push({ status: 200, body: '{"data":[{"index":0,"embedding":[1e400,0]}],"model":"m"}' });
    expect(await failure(client().embed(['a']))).toMatchObject({ name: 'PermanentError', code: 'provider.invalid_vector' });
  });

  it("reads OpenAI's error shape: code, or type when code is null, in a provider.rejected PermanentError", async () => {
    script.push({ status: 400, body: { error: { message: "'$.input' is invalid.", type: 'invalid_request_error', param: null, code: null } } });
    script.push({ status: 404, body: { error: { message: 'The model does not exist', type: 'invalid_request_error', param: null, code: 'model_not_found' } } });
    expect(await failure(client().embed(['a']))).toMatchObject({
      code: 'provider.rejected',
      details: { status: 400, providerCode: 'invalid_request_error', providerMessage: "'$.input' is invalid." },
    });
    expect(await failure(client().embed(['a']))).toMatchObject({ code: 'provider.rejected', details: { status: 404, providerCode: 'model_not_found' } });
  });

  it('throws a retryable ProviderUnavailableError for 5xx, 429 and a timeout', async () => {
    for (const status of [500, 503, 429]) {
      script.push({ status, body: { error: { message: 'busy', type: 'server_error', code: null } } });
      expect(await failure(client({ breaker: false }).embed(['a']))).toMatchObject({ code: 'provider.unavailable', retryable: true, upstreamStatus: status });
    }
    script.push({ ...answer([[1, 0]]), delayMs: 500 });
    const timedOut = await failure(client({ breaker: false, timeoutMs: 100 }).embed(['a']));
    expect(timedOut).toBeInstanceOf(ProviderUnavailableError);
    expect((timedOut as Error).message).toContain('no answer within 100 ms');
  });

  it('opens its circuit after consecutive unavailable answers (and not for invalid answers), then fails fast with provider.circuit_open', async () => {
    const embeddings = client({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 } });
    script.push(answer([[1, 0, 0]]), answer([[1, 0, 0]]));
    for (let i = 0; i < 2; i += 1) expect(await failure(embeddings.embed(['a']))).toMatchObject({ code: 'provider.dimension_mismatch' });
    expect(embeddings.circuitState).toBe('closed');
    script.push({ status: 503 }, { status: 503 });
    for (let i = 0; i < 2; i += 1) expect(await failure(embeddings.embed(['a']))).toMatchObject({ code: 'provider.unavailable' });
    expect(embeddings.circuitState).toBe('open');
    expect(await failure(embeddings.embed(['a']))).toMatchObject({ name: 'ProviderUnavailableError', code: 'provider.circuit_open' });
    expect(received).toHaveLength(4);
  });

  it('rethrows the caller’s abort reason when its signal fires', async () => {
    script.push({ ...answer([[1, 0]]), delayMs: 500 });
    const controller = new AbortController();
    const reason = new Error('deadline');
    setTimeout(() => controller.abort(reason), 50);
    expect(await failure(client({ breaker: false }).embed(['a'], { signal: controller.signal }))).toBe(reason);
  });
});
