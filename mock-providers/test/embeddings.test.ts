import { createLogger } from '@civildiy/common';
import type { App } from '@civildiy/common/service';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildEmbeddingsApp, type EmbeddingsAppOptions } from '../src/app.ts';

const logger = createLogger({ service: 'mock-providers-test', level: 'silent' });
let app: App;

interface EmbeddingsAnswer {
  object: 'list';
  data: { object: 'embedding'; index: number; embedding: number[] }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

const build = (options: Partial<EmbeddingsAppOptions> = {}) => buildEmbeddingsApp({ logger, logRequests: false, ...options });

function post(body: unknown, headers: Record<string, string> = {}, target: App = app) {
  return target.inject({ method: 'POST', url: '/v1/embeddings', payload: body as Record<string, unknown>, headers });
}

async function embed(input: string | string[], extra: Record<string, unknown> = {}, target: App = app): Promise<EmbeddingsAnswer> {
  const response = await post({ model: 'civildiy-hash-embed-1', input, ...extra }, {}, target);
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

async function vectorOf(text: string, extra: Record<string, unknown> = {}): Promise<number[]> {
  return (await embed(text, extra)).data[0]!.embedding;
}

const norm = (vector: number[]) => Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
const cosine = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * b[i]!, 0);
const stats = async (target: App = app) => (await target.inject({ method: 'GET', url: '/_admin/stats' })).json();
const setFaults = (faults: Record<string, unknown>, target: App = app) => target.inject({ method: 'PUT', url: '/_admin/faults', payload: faults });

beforeAll(async () => {
  app = await build();
});

afterAll(async () => {
  await app.close();
});

beforeEach(async () => {
  expect((await app.inject({ method: 'POST', url: '/_admin/reset' })).statusCode).toBe(204);
});

describe('POST /v1/embeddings', () => {
  it("answers in OpenAI's shape: one embedding per input in order, the model echoed, usage counted", async () => {
    const answer = await embed(['build a cedar raised garden bed', 'wiring a ceiling lamp']);
    expect(answer).toMatchObject({ object: 'list', model: 'civildiy-hash-embed-1', usage: { prompt_tokens: 14, total_tokens: 14 } });
    expect(answer.data.map(({ object, index, embedding }) => ({ object, index, length: embedding.length }))).toEqual([
      { object: 'embedding', index: 0, length: 256 },
      { object: 'embedding', index: 1, length: 256 },
    ]);
    expect(await stats()).toMatchObject({ provider: 'embeddings', callsReceived: 1, embeddingRequests: 1, embeddingsCreated: 2 });
  });

  it('gives the same text the same vector every time: alone or in a batch, at any position, from another app instance', async () => {
    const text = 'Sanding and oiling an oak workbench top';
    const alone = await vectorOf(text);
    const batch = await embed(['a shed roof', text, 'a shed roof']);
    expect(batch.data[1]!.embedding).toEqual(alone);
    expect(batch.data[2]!.embedding).toEqual(batch.data[0]!.embedding);
    const other = await build();
    try {
      expect((await embed(text, {}, other)).data[0]!.embedding).toEqual(alone);
    } finally {
      await other.close();
    }
  });

  it('answers unit vectors, also for a text with no words left (one fixed vector, no NaN)', async () => {
    const texts = ['build a cedar raised garden bed', 'x'.repeat(10_000), 'Ünïcödé wörds — 漢字 and emoji 🪚🔨', 'the of and', '!!! ???', '42'];
    const answer = await embed(texts);
    for (const { embedding } of answer.data) {
      expect(embedding.every(Number.isFinite)).toBe(true);
      expect(norm(embedding)).toBeCloseTo(1, 6);
    }
    expect(answer.data[3]!.embedding).toEqual(answer.data[4]!.embedding);
    expect(answer.data[3]!.embedding).not.toEqual(answer.data[5]!.embedding);
  });

  it('uses 256 dimensions by default, the request’s dimensions when given, and the app’s configured default', async () => {
    expect((await vectorOf('garden bed')).length).toBe(256);
    const small = await vectorOf('garden bed', { dimensions: 64 });
    expect(small.length).toBe(64);
    expect(norm(small)).toBeCloseTo(1, 6);
    const configured = await build({ dimensions: 128 });
    try {
      expect((await embed('garden bed', {}, configured)).data[0]!.embedding.length).toBe(128);
      expect((await embed('garden bed', { dimensions: 32 }, configured)).data[0]!.embedding.length).toBe(32);
    } finally {
      await configured.close();
    }
  });

  it('ignores the request’s dimensions when built with fixedDimensions, as a fixed-size model server does', async () => {
    const fixed = await build({ dimensions: 64, fixedDimensions: true });
    try {
      expect((await embed('garden bed', { dimensions: 256 }, fixed)).data[0]!.embedding.length).toBe(64);
    } finally {
      await fixed.close();
    }
  });

  it('puts texts sharing words and word pairs closer than unrelated ones', async () => {
    const [query, paraphrase, unrelated, related] = (
      await embed([
        'build a cedar raised garden bed',
        'raised bed for the garden from cedar boards',
        'wiring a ceiling lamp',
        'a raised planter box for vegetables',
      ])
    ).data.map((item) => item.embedding) as [number[], number[], number[], number[]];
    expect(cosine(query, paraphrase)).toBeGreaterThan(0.5);
    expect(cosine(query, paraphrase)).toBeGreaterThan(cosine(query, related));
    expect(cosine(query, related)).toBeGreaterThan(cosine(query, unrelated));
    expect(Math.abs(cosine(query, unrelated))).toBeLessThan(0.2);
  });

  it('makes plural and verb forms meet, and word order count through word pairs', async () => {
    const [a, b, c] = (await embed(['sanding the oak boards', 'sand an oak board', 'boards of sanded oak'])).data.map((item) => item.embedding) as [number[], number[], number[]];
    expect(cosine(a, b)).toBeCloseTo(1, 6);
    expect(cosine(a, c)).toBeGreaterThan(0.6);
    expect(cosine(a, c)).toBeLessThan(cosine(a, b));
  });

  it('echoes the model name, defaults it, and gives another model name another vector space', async () => {
    expect((await post({ input: 'garden bed' })).json().model).toBe('civildiy-hash-embed-1');
    const other = await embed('garden bed', { model: 'civildiy-hash-embed-2' });
    expect(other.model).toBe('civildiy-hash-embed-2');
    expect(other.data[0]!.embedding).not.toEqual(await vectorOf('garden bed'));
  });

  it('answers base64 little-endian float32 for encoding_format base64', async () => {
    const floats = await vectorOf('garden bed', { dimensions: 16 });
    const response = await post({ input: 'garden bed', dimensions: 16, encoding_format: 'base64' });
    const encoded: string = response.json().data[0].embedding;
    const bytes = Buffer.from(encoded, 'base64');
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toHaveLength(16);
    decoded.forEach((value, i) => expect(value).toBeCloseTo(floats[i]!, 6));
  });

  it('embeds 256 texts of about 1 KB in one request quickly', async () => {
    const words = 'cedar garden bed raised board wiring lamp ceiling tile floor drill screw sand paint wood shelf hinge clamp glue'.split(' ');
    const texts = Array.from({ length: 256 }, (_, i) => Array.from({ length: 180 }, (_, j) => words[(i * 7 + j * 13) % words.length]).join(' ').slice(0, 1_000));
    await embed(texts.slice(0, 8)); // warm up
    const started = performance.now();
    const answer = await embed(texts);
    expect(answer.data).toHaveLength(256);
    // Generous bound for a shared machine; it takes a few ms to embed plus the JSON.
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('POST /v1/embeddings errors (OpenAI shape)', () => {
  it.each([
    ['an empty string', { input: '' }, 'input', 'invalid_value'],
    ['an empty array', { input: [] }, 'input', 'invalid_value'],
    ['an empty string in the array', { input: ['fine', ''] }, 'input[1]', 'invalid_value'],
    ['a non-string item', { input: ['fine', 42] }, 'input', 'invalid_value'],
    ['no input', { model: 'x' }, 'input', 'invalid_value'],
    ['more than 2048 inputs', { input: Array(2049).fill('text') }, 'input', 'invalid_value'],
    ['a text over 8192 tokens', { input: ['fine', 'x'.repeat(32_769)] }, 'input[1]', 'context_length_exceeded'],
    ['dimensions 0', { input: 'x', dimensions: 0 }, 'dimensions', 'invalid_value'],
    ['fractional dimensions', { input: 'x', dimensions: 1.5 }, 'dimensions', 'invalid_value'],
    ['an unknown encoding_format', { input: 'x', encoding_format: 'hex' }, 'encoding_format', 'invalid_value'],
  ])('answers 400 invalid_request_error for %s', async (_name, body, param, code) => {
    const response = await post(body);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: { message: expect.stringContaining(param), type: 'invalid_request_error', param, code } });
  });

  it('answers 400 invalid_json for a body that is not JSON', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: '{"input":', headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_json' } });
  });

  it('accepts fields it does not know (user)', async () => {
    expect((await post({ input: 'x', user: 'someone' })).statusCode).toBe(200);
  });
});

describe('API key', () => {
  let keyed: App;

  beforeAll(async () => {
    keyed = await build({ apiKey: 'sk-mock-123' });
  });

  afterAll(async () => {
    await keyed.close();
  });

  it('answers 401 invalid_api_key without the key or with another one, and 200 with Authorization: Bearer <key>', async () => {
    for (const headers of [{}, { authorization: 'Bearer sk-mock-124' }, { authorization: 'sk-mock-123' }] as Record<string, string>[]) {
      const response = await post({ input: 'garden bed' }, headers, keyed);
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    expect((await post({ input: 'garden bed' }, { authorization: 'Bearer sk-mock-123' }, keyed)).statusCode).toBe(200);
    expect(await stats(keyed)).toMatchObject({ callsReceived: 4, embeddingRequests: 1 });
  });

  it('checks the key before the body', async () => {
    expect((await post({ input: '' }, { authorization: 'Bearer wrong' }, keyed)).statusCode).toBe(401);
  });
});

describe('embeddings fault injection', () => {
  it('fails the next N calls with 503 provider_unavailable (server_error), then answers the same vectors as without faults', async () => {
    const expected = await vectorOf('garden bed');
    await setFaults({ failNext: 2 });
    const first = await post({ input: 'garden bed' });
    const second = await post({ input: 'garden bed' });
    expect([first.statusCode, second.statusCode]).toEqual([503, 503]);
    expect(first.json()).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'provider_unavailable' } });
    expect((await vectorOf('garden bed'))).toEqual(expected);
    expect(await stats()).toMatchObject({ callsReceived: 4, failuresInjected: 2, embeddingRequests: 2 });
  });

  it('answers 500 provider_error when failureStatus is 500, and waits latencyMs', async () => {
    await setFaults({ failNext: 1, failureStatus: 500, latencyMs: 100 });
    const started = performance.now();
    const response = await post({ input: 'x' });
    expect(response.statusCode).toBe(500);
    expect(response.json().error.code).toBe('provider_error');
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
  });

  it('fails a reproducible share of calls for a failure rate', async () => {
    const pattern = async () => {
      await setFaults({ failureRate: 0.5 });
      const statuses: number[] = [];
      for (let i = 0; i < 16; i += 1) statuses.push((await post({ input: `text ${i}` })).statusCode);
      return statuses;
    };
    const first = await pattern();
    expect(await pattern()).toEqual(first);
    expect(first).toContain(503);
    expect(first).toContain(200);
  });

  it('applies start-up faults, and /_admin/reset removes faults and zeroes the counters', async () => {
    const faulty = await build({ faults: { failNext: 1, failureRate: 0, latencyMs: 0, failureStatus: 503 } });
    try {
      expect((await post({ input: 'x' }, {}, faulty)).statusCode).toBe(503);
      await faulty.inject({ method: 'POST', url: '/_admin/reset' });
      expect(await stats(faulty)).toEqual({
        provider: 'embeddings',
        callsReceived: 0,
        failuresInjected: 0,
        idempotentReplays: 0,
        keyConflicts: 0,
        embeddingRequests: 0,
        embeddingsCreated: 0,
      });
      expect((await faulty.inject({ method: 'GET', url: '/_admin/faults' })).json()).toEqual({ failNext: 0, failureRate: 0, latencyMs: 0, failureStatus: 503 });
    } finally {
      await faulty.close();
    }
  });

  it('counts calls by outcome in /metrics and serves its OpenAPI document', async () => {
    await setFaults({ failNext: 1 });
    await post({ input: 'x' });
    await post({ input: 'x' });
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/civildiy_mock_provider_calls_total\{provider="embeddings",outcome="injected_failure"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/civildiy_mock_provider_calls_total\{provider="embeddings",outcome="embedded"[^}]*\} [1-9]/);
    const docs = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(docs.info.title).toBe('Embeddings provider');
    expect(Object.keys(docs.paths)).toEqual(expect.arrayContaining(['/v1/embeddings', '/_admin/faults', '/_admin/stats']));
  });
});
