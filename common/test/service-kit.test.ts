import { Writable } from 'node:stream';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConflictError, ForbiddenError, NotFoundError, TooManyRequestsError } from '../src/errors/index.ts';
import { createLogger } from '../src/logging/index.ts';
import { ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_ISSUER, createServiceApp, requireUser, rolesOf, type App } from '../src/service/index.ts';

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk, _encoding, callback) {
    for (const line of String(chunk).trim().split('\n')) lines.push(JSON.parse(line));
    callback();
  },
});

let app: App;
type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let privateKey: SigningKey;
let foreignKey: SigningKey;
const kid = 'test-key';

async function token(claims: Record<string, unknown> = {}, options: { key?: SigningKey; expiresIn?: string | number; kid?: string } = {}) {
  return new SignJWT({ typ: 'access', username: 'ada', ...claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: options.kid ?? kid })
    .setSubject('0190a6f0-0000-7000-8000-000000000001')
    .setIssuer(ACCESS_TOKEN_ISSUER)
    .setAudience(ACCESS_TOKEN_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .sign(options.key ?? privateKey);
}

beforeAll(async () => {
  const pair = await generateKeyPair('EdDSA', { extractable: true });
  privateKey = pair.privateKey;
  foreignKey = (await generateKeyPair('EdDSA')).privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  app = await createServiceApp({
    name: 'kit-test',
    logger: createLogger({ service: 'kit-test', destination: sink, level: 'info' }),
    auth: { keys: createLocalJWKSet({ keys: [jwk] }) },
    readiness: { always: async () => {}, broken: async () => Promise.reject(new Error('db down')) },
    bodyLimitBytes: 1024,
  });
  app.post(
    '/things',
    { schema: { body: z.object({ name: z.string().min(2), count: z.number().int().positive() }) } },
    async (request) => ({ got: request.body.name }),
  );
  app.get('/fail/:kind', { schema: { params: z.object({ kind: z.string() }) } }, async (request) => {
    switch (request.params.kind) {
      case 'conflict':
        throw new ConflictError('Already there', 'things.duplicate');
      case 'forbidden':
        throw new ForbiddenError();
      case 'missing':
        throw new NotFoundError('No such thing', 'things.not_found');
      case 'limited':
        throw new TooManyRequestsError(7);
      default:
        throw new Error('secret internal detail');
    }
  });
  app.get('/me', { onRequest: app.authenticate }, async (request) => {
    request.log.info('inside protected route');
    return { id: requireUser(request).id };
  });
  app.post('/operations', { onRequest: app.requireRole('operator') }, async (request) => {
    request.log.info('inside operator route');
    return { id: requireUser(request).id, roles: requireUser(request).roles };
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

describe('service kit errors', () => {
  it('answers a schema violation with 400 validation_failed naming the failing fields', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', payload: { name: 'x', count: -1 } });
    expect(response.statusCode).toBe(400);
    const body = response.json();
    expect(body.error.code).toBe('validation_failed');
    expect(body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['count', 'name']);
  });

  it('refuses text with the NUL character (Postgres cannot store it) with 400 validation_failed naming where it is', async () => {
    const inBody = await app.inject({ method: 'POST', url: '/things', payload: '{"name":"ok\\u0000","count":1}', headers: { 'content-type': 'application/json' } });
    expect(inBody.statusCode).toBe(400);
    expect(inBody.json().error).toMatchObject({ code: 'validation_failed', details: [{ in: 'body', path: 'name' }] });
    const inQuery = await app.inject({ method: 'GET', url: '/fail/conflict?tag=a%00b' });
    expect(inQuery.statusCode).toBe(400);
    expect(inQuery.json().error).toMatchObject({ code: 'validation_failed', details: [{ in: 'querystring', path: 'tag' }] });
    const inPath = await app.inject({ method: 'GET', url: '/fail/con%00flict' });
    expect(inPath.json().error).toMatchObject({ code: 'validation_failed', details: [{ in: 'params', path: 'kind' }] });
    // A backslash followed by "u0000" is ordinary text.
    const escaped = await app.inject({ method: 'POST', url: '/things', payload: { name: '\\u0000', count: 1 } });
    expect(escaped.statusCode).toBe(200);
  });

  it('answers malformed JSON with 400 invalid_json', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', payload: '{"name":', headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('invalid_json');
  });

  it('answers a body over the limit with 413 payload_too_large', async () => {
    const response = await app.inject({ method: 'POST', url: '/things', payload: { name: 'x'.repeat(2000), count: 1 } });
    expect(response.statusCode).toBe(413);
    expect(response.json().error.code).toBe('payload_too_large');
  });

  it('answers an unknown route with 404 route_not_found', async () => {
    const response = await app.inject({ method: 'GET', url: '/nowhere' });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('route_not_found');
  });

  it.each([
    ['conflict', 409, 'things.duplicate'],
    ['forbidden', 403, 'forbidden'],
    ['missing', 404, 'things.not_found'],
    ['limited', 429, 'rate_limited'],
  ])('maps a thrown %s error to %i %s', async (kind, status, code) => {
    const response = await app.inject({ method: 'GET', url: `/fail/${kind}` });
    expect(response.statusCode).toBe(status);
    expect(response.json().error.code).toBe(code);
    if (status === 429) expect(response.headers['retry-after']).toBe('7');
  });

  it('answers an unexpected error with 500 and no internals, logging it with the correlation id', async () => {
    const response = await app.inject({ method: 'GET', url: '/fail/boom', headers: { 'x-request-id': 'req-500-check' } });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: 'internal', message: 'Internal server error' } });
    expect(response.body).not.toContain('secret');
    const logged = lines.find((line) => line.correlationId === 'req-500-check' && line.level === 'error');
    expect(logged).toBeDefined();
    expect(JSON.stringify(logged)).toContain('secret internal detail');
  });
});

describe('service kit authentication', () => {
  it('accepts a valid token, and log lines in the request carry the user id', async () => {
    const response = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${await token()}`, 'x-request-id': 'req-me' } });
    expect(response.statusCode).toBe(200);
    expect(response.json().id).toBe('0190a6f0-0000-7000-8000-000000000001');
    expect(response.headers['x-request-id']).toBe('req-me');
    const line = lines.find((l) => l.msg === 'inside protected route' && l.correlationId === 'req-me');
    expect(line?.userId).toBe('0190a6f0-0000-7000-8000-000000000001');
  });

  it('rejects a missing token with 401 auth.missing_token', async () => {
    const response = await app.inject({ method: 'GET', url: '/me' });
    expect(response.statusCode).toBe(401);
    expect(response.json().error.code).toBe('auth.missing_token');
  });

  it('rejects an expired token with 401 auth.token_expired', async () => {
    const expired = await token({}, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const response = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${expired}` } });
    expect(response.statusCode).toBe(401);
    expect(response.json().error.code).toBe('auth.token_expired');
  });

  it('rejects a tampered token, a token signed with a foreign key and an alg:none token with 401', async () => {
    const valid = await token();
    const [header, payload, signature] = valid.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: 'someone-else' })).toString('base64url');
    const tampered = `${header}.${forgedPayload}.${signature}`;
    const foreign = await token({}, { key: foreignKey });
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid })).toString('base64url')}.${payload}.`;
    for (const bad of [tampered, foreign, none, 'not-a-jwt']) {
      const response = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${bad}` } });
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toBe('auth.invalid_token');
    }
  });

  it('rejects a refresh-type token used as an access token', async () => {
    const refreshLike = await token({ typ: 'refresh' });
    const response = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${refreshLike}` } });
    expect(response.statusCode).toBe(401);
  });
});

describe('service kit roles', () => {
  const operations = async (claims?: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/operations', headers: claims === undefined ? {} : { authorization: `Bearer ${await token(claims)}` } });

  it('lets a token with the operator role through app.requireRole, with the roles on request.user and the user id in the logs', async () => {
    const response = await app.inject({ method: 'POST', url: '/operations', headers: { authorization: `Bearer ${await token({ roles: ['operator'] })}`, 'x-request-id': 'req-op' } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ id: '0190a6f0-0000-7000-8000-000000000001', roles: ['operator'] });
    expect(lines.find((l) => l.msg === 'inside operator route' && l.correlationId === 'req-op')?.userId).toBe('0190a6f0-0000-7000-8000-000000000001');
  });

  it('answers 401 as app.authenticate does without a valid token, before looking at roles', async () => {
    expect((await operations()).json().error.code).toBe('auth.missing_token');
    const expired = await token({ roles: ['operator'] }, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const response = await app.inject({ method: 'POST', url: '/operations', headers: { authorization: `Bearer ${expired}` } });
    expect({ status: response.statusCode, code: response.json().error.code }).toEqual({ status: 401, code: 'auth.token_expired' });
  });

  it('answers 403 auth.role_required for a valid token without the role: no claim, an empty one, unknown roles, another spelling, a malformed claim', async () => {
    for (const claims of [{}, { roles: [] }, { roles: ['admin'] }, { roles: ['Operator', 'OPERATOR'] }, { roles: 'operator' }, { roles: { operator: true } }, { roles: [null, 1] }]) {
      const response = await operations(claims);
      expect({ claims, status: response.statusCode, code: response.json().error.code, details: response.json().error.details }).toEqual({
        claims,
        status: 403,
        code: 'auth.role_required',
        details: { role: 'operator' },
      });
    }
  });

  it('keeps the known roles of a claim and drops the rest (rolesOf)', () => {
    expect(rolesOf(['operator', 'admin', 'operator'])).toEqual(['operator']);
    expect(rolesOf(undefined)).toEqual([]);
    expect(rolesOf('operator')).toEqual([]);
  });
});

describe('service kit operations endpoints', () => {
  it('reports liveness and readiness with each check', async () => {
    expect((await app.inject({ method: 'GET', url: '/health/live' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks.always.status).toBe('up');
    expect(ready.json().checks.broken).toMatchObject({ status: 'down', error: 'db down' });
  });

  it('serves Prometheus metrics including request durations', async () => {
    await app.inject({ method: 'GET', url: '/health/live' });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('civildiy_http_request_duration_seconds_bucket');
    expect(metrics.body).toContain('route="/health/live"');
  });

  it('serves an OpenAPI document generated from the zod schemas', async () => {
    const response = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const spec = response.json();
    expect(spec.openapi).toMatch(/^3\./);
    expect(spec.paths['/things'].post.requestBody.content['application/json'].schema.required).toEqual(['name', 'count']);
  });
});
