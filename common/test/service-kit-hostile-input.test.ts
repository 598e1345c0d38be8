import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../src/logging/index.ts';
import { MAX_JSON_DEPTH, createServiceApp, type App } from '../src/service/index.ts';

/**
 * What a hostile client can send a service, over real sockets where Node's own HTTP parser is part
 * of the story: every refusal is a 4xx in the house format (`{ error: { code, message } }`).
 */
let app: App;
let port: number;
const received: unknown[] = [];

beforeAll(async () => {
  app = await createServiceApp({ name: 'hostile-input-test', logger: createLogger({ service: 'hostile-input-test', level: 'silent' }), auth: false });
  app.post('/things', { schema: { body: z.object({ title: z.string(), nested: z.unknown().optional() }) } }, async (request) => {
    received.push(request.body);
    return { ok: true };
  });
  app.get('/things/:id', { schema: { params: z.object({ id: z.string() }), querystring: z.object({ q: z.string().optional() }) } }, async (request) => ({
    id: request.params.id,
  }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app.close();
});

function nested(depth: number): string {
  return `{"title":"deep","nested":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

/** Sends raw bytes and resolves with everything the server wrote back before closing. */
function rawExchange(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

function bodyOf(answer: string): unknown {
  return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
}

describe('hostile JSON', () => {
  it('refuses a body nested 5,000 levels deep with 400 json_too_deep instead of overflowing the stack', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: nested(5_000) });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('json_too_deep');
  });

  it('refuses a body one level past the limit, and takes one at the limit', async () => {
    const over = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: nested(MAX_JSON_DEPTH) });
    expect(over.json().error.code).toBe('json_too_deep');
    const at = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: nested(MAX_JSON_DEPTH - 1) });
    expect(at.statusCode).toBe(200);
  });

  it('does not count brackets inside strings (escaped quotes included) as nesting', async () => {
    const title = `${'['.repeat(200)}\\"${'{'.repeat(200)}`;
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: `{"title":"${title}"}` });
    expect(response.statusCode).toBe(200);
  });

  it('refuses a lone surrogate in a field or a key with 400 validation_failed naming it, and keeps a surrogate pair', async () => {
    const lone = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"title":"a\\ud800b"}' });
    expect(lone.statusCode).toBe(400);
    expect(lone.json().error).toMatchObject({ code: 'validation_failed', details: [{ in: 'body', path: 'title' }] });
    const inKey = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"title":"x","nested":{"k\\udc00":1}}' });
    expect(inKey.json().error).toMatchObject({ code: 'validation_failed', details: [{ in: 'body', path: 'nested.k\udc00' }] });
    const pair = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"title":"saw \\ud83e\\ude9a"}' });
    expect(pair.statusCode).toBe(200);
  });

  it('finds a NUL deep in a 60-level body and names its path', async () => {
    const payload = `{"title":"t","nested":${'['.repeat(60)}"\\u0000"${']'.repeat(60)}}`;
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload });
    expect(response.json().error).toMatchObject({ code: 'validation_failed', details: [{ path: `nested${'.0'.repeat(60)}` }] });
  });

  it('reads a surrogate percent-encoded as bytes in the query as U+FFFD (200, not 500), and refuses a low surrogate alone in JSON', async () => {
    const query = await app.inject({ method: 'GET', url: '/things/x?q=%ED%A0%80' });
    // Invalid UTF-8 decodes to U+FFFD, which is fine text: the answer is 200, not 500.
    expect(query.statusCode).toBe(200);
    const json = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"title":"\\udfff"}' });
    expect(json.statusCode).toBe(400);
  });

  it('refuses prototype poisoning with a 400 in the house format', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"title":"x","__proto__":{"admin":true}}' });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toEqual(expect.any(String));
  });
});

describe('what Node and the router refuse, in the house format', () => {
  it('answers a 20 KB header with 431 headers_too_large', async () => {
    const answer = await rawExchange(`GET /things/x HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(answer.startsWith('HTTP/1.1 431')).toBe(true);
    expect(bodyOf(answer)).toEqual({ error: { code: 'headers_too_large', message: expect.any(String) } });
  });

  it('answers a request that is not HTTP with 400 malformed_request', async () => {
    const answer = await rawExchange('GET /things/x HTTP/1.1\r\nhost x\r\n\r\n');
    expect(answer.startsWith('HTTP/1.1 400')).toBe(true);
    expect(bodyOf(answer)).toEqual({ error: { code: 'malformed_request', message: expect.any(String) } });
  });

  it('answers %ff in a path parameter with 400 invalid_url', async () => {
    const response = await app.inject({ method: 'GET', url: '/things/%ff' });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: { code: 'invalid_url', message: expect.any(String) } });
  });

  it('answers an over-long path parameter with 414 path_parameter_too_long', async () => {
    const response = await app.inject({ method: 'GET', url: `/things/${'a'.repeat(500)}` });
    expect(response.statusCode).toBe(414);
    expect(response.json()).toEqual({ error: { code: 'path_parameter_too_long', message: expect.any(String) } });
  });

  it('answers every one of 36 uploads of 10 MB with 413 payload_too_large, never a reset connection', async () => {
    const body = Buffer.alloc(10 * 1024 * 1024, 0x61);
    const outcomes = await Promise.all(
      Array.from({ length: 36 }, (_, i) =>
        new Promise<string>((resolve) => {
          const chunked = i % 2 === 1;
          const headers: Record<string, string | number> = { 'content-type': 'application/json' };
          if (!chunked) headers['content-length'] = body.length;
          const request = httpRequest({ port, method: 'POST', path: '/things', headers }, (response) => {
            let text = '';
            response.on('data', (chunk) => (text += chunk));
            response.on('end', () => resolve(`${response.statusCode} ${JSON.parse(text).error?.code}`));
          });
          request.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
          request.end(body);
        }),
      ),
    );
    expect(new Set(outcomes)).toEqual(new Set(['413 payload_too_large']));
  });
});
