import { sql } from 'drizzle-orm';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { currentDeadline } from '../src/context/index.ts';
import { openDatabase, type OpenDatabase } from '../src/db/index.ts';
import { newId } from '../src/ids/index.ts';
import { createLogger } from '../src/logging/index.ts';
import { AdaptiveLimit, AdmissionControl, createServiceApp, type App, type HttpSettings } from '../src/service/index.ts';
import { fixtureMigrations, fixtureSchema } from './fixtures/db-fixture/targets.ts';

/** A gate a route waits on, opened by the test: "the slow request" without a timer. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function appWith(http: Partial<HttpSettings>, registry = new Registry()) {
  const app = await createServiceApp({
    name: 'admission-test',
    logger: createLogger({ service: 'admission-test', level: 'silent' }),
    auth: false,
    http,
    metricsRegistry: registry,
  });
  return { app, registry };
}

describe('admission control', () => {
  let app: App;
  let registry: Registry;
  let slow = gate();
  let entered = gate();

  beforeAll(async () => {
    ({ app, registry } = await appWith({ maxConcurrent: 1, maxQueueMs: 100, maxQueued: 1 }));
    app.get('/slow', async () => {
      entered.open();
      await slow.opened;
      return { ok: true };
    });
    app.get('/fast', async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterEach(() => {
    slow.open();
    slow = gate();
    entered = gate();
  });
  afterAll(() => app.close());

  const url = (path: string) => `http://127.0.0.1:${(app.server.address() as { port: number }).port}${path}`;

  it('refuses with 503 service.overloaded and Retry-After a request that cannot start within the queue time', async () => {
    const first = fetch(url('/slow'));
    await entered.opened;
    const refused = await fetch(url('/fast'));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({ error: { code: 'service.overloaded', message: expect.any(String), details: { reason: 'queue_timeout' } } });
    slow.open();
    expect((await first).status).toBe(200);
  });

  it('refuses at once when the queue is full, and serves the one that waited once the slot frees', async () => {
    const first = fetch(url('/slow'));
    await entered.opened;
    const waiting = fetch(url('/fast'));
    // The queue holds one; wait until the waiter is in it (the gauge reads it) before the next arrives.
    await expect.poll(async () => (await registry.getSingleMetricAsString('civildiy_http_requests_queued')).endsWith(' 1')).toBe(true);
    const full = await fetch(url('/fast'));
    expect(full.status).toBe(503);
    expect(((await full.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe('queue_full');
    slow.open();
    expect((await waiting).status).toBe(200);
    expect((await first).status).toBe(200);
    const shed = await registry.getSingleMetricAsString('civildiy_http_requests_shed_total');
    expect(shed).toContain('reason="queue_full"');
  });

  it('answers health probes and /metrics while every slot is taken', async () => {
    const first = fetch(url('/slow'));
    await entered.opened;
    expect((await fetch(url('/health/live'))).status).toBe(200);
    expect((await fetch(url('/metrics'))).status).toBe(200);
    slow.open();
    await first;
  });

  it('refuses at once a queued request whose deadline (X-Request-Timeout-Ms) is already past', async () => {
    const first = fetch(url('/slow'));
    await entered.opened;
    const late = await fetch(url('/fast'), { headers: { 'x-request-timeout-ms': '0' } });
    expect(late.status).toBe(503);
    expect(((await late.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe('deadline');
    slow.open();
    await first;
  });
});

describe('AdmissionControl', () => {
  it('hands a freed slot to the oldest waiter, skipping those that gave up', async () => {
    const control = new AdmissionControl({ maxConcurrent: 1, maxQueueMs: 10_000, maxQueued: 10 });
    expect(control.acquire(undefined)).toBeUndefined();
    const expired = control.acquire(Date.now() + 1);
    const second = control.acquire(undefined);
    expect(await expired).toBe('deadline');
    expect(control.queued).toBe(2);
    control.release();
    expect(await second).toBeUndefined();
    expect(control.running).toBe(1);
    control.release();
    expect(control.running).toBe(0);
  });
});

describe('AdaptiveLimit', () => {
  const limit = () => new AdaptiveLimit({ initial: 8, min: 2, max: 32, latencyTargetMs: 100 });

  it('grows about one per round of fast requests while the limit is in use, up to its maximum', () => {
    const adaptive = limit();
    for (let i = 0; i < 8; i++) adaptive.record(10, false, 8);
    expect(adaptive.current).toBe(8);
    for (let i = 0; i < 600; i++) adaptive.record(10, false, adaptive.current);
    expect(adaptive.current).toBe(32);
  });

  it('does not grow while it is not used: an idle spell does not license a burst', () => {
    const adaptive = limit();
    for (let i = 0; i < 200; i++) adaptive.record(10, false, 1);
    expect(adaptive.current).toBe(8);
  });

  it('takes a quarter off for a slow or overloaded request, once per round trip, never below its minimum', () => {
    const adaptive = limit();
    adaptive.record(500, false, 8, 1_000);
    expect(adaptive.current).toBe(6);
    // Other slow answers of the same moment (within one latency) count once.
    adaptive.record(500, false, 8, 1_200);
    expect(adaptive.current).toBe(6);
    adaptive.record(10, true, 8, 1_600);
    expect(adaptive.current).toBe(4);
    for (let t = 2_000; t < 10_000; t += 1_000) adaptive.record(500, false, 8, t);
    expect(adaptive.current).toBe(2);
  });

  it('lets an AdmissionControl admit waiters as its limit grows, and queue more once it shrinks', async () => {
    const control = new AdmissionControl({ maxConcurrent: 4, maxQueueMs: 10_000, maxQueued: 10, adaptive: { initial: 1, min: 1, latencyTargetMs: 100 } });
    expect(control.acquire(undefined)).toBeUndefined();
    const waiting = [control.acquire(undefined), control.acquire(undefined)];
    expect(control.queued).toBe(2);
    // A fast answer at full use: the limit grows to 2, and both slots go to the waiters.
    control.release({ latencyMs: 5, overloaded: false });
    expect(control.limit).toBe(2);
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
    expect(control.running).toBe(2);
    control.release({ latencyMs: 500, overloaded: false });
    expect(control.limit).toBe(1);
    const next = control.acquire(undefined);
    expect(next).toBeInstanceOf(Promise);
    control.release({ latencyMs: 5, overloaded: false });
    expect(await next).toBeUndefined();
  });
});

describe('request deadlines', () => {
  let app: App;
  let database: OpenDatabase<typeof fixtureSchema>;
  let proceed = gate();
  let inside = gate();

  beforeAll(async () => {
    database = await openDatabase({ service: 'deadline-test', dataDir: 'memory://', migrationsFolder: fixtureMigrations, schema: fixtureSchema });
    ({ app } = await appWith({ requestTimeoutMs: 5_000 }));
    app.post('/widgets', { schema: { body: z.object({ name: z.string() }) } }, async (request) => {
      await database.db.transaction(async (tx) => {
        await tx.insert(fixtureSchema.widgets).values({ id: newId(), name: request.body.name });
        inside.open();
        await proceed.opened;
      });
      return { ok: true };
    });
    app.get('/deadline', async () => ({ remaining: (currentDeadline() ?? 0) - Date.now() }));
  });
  afterEach(() => {
    proceed = gate();
    inside = gate();
  });
  afterAll(async () => {
    await app.close();
    await database.close();
  });

  const count = async (name: string) =>
    (await database.db.execute<{ n: number }>(sql`select count(*)::int as n from widgets where name = ${name}`)).rows[0]!.n;

  it('does not commit a transaction whose request deadline passed while it ran: 503 request.deadline_exceeded, nothing written', async () => {
    const name = `late-${newId()}`;
    const answer = app.inject({ method: 'POST', url: '/widgets', headers: { 'x-request-timeout-ms': '50' }, payload: { name } });
    await inside.opened;
    // The caller's 50 ms pass while the transaction is open.
    await expect.poll(() => Date.now(), { interval: 10 }).toBeGreaterThan(Date.now() + 60);
    proceed.open();
    const response = await answer;
    expect(response.statusCode).toBe(503);
    expect(response.json().error.code).toBe('request.deadline_exceeded');
    expect(response.headers['retry-after']).toBe('1');
    expect(await count(name)).toBe(0);
  });

  it('commits when the deadline is not reached', async () => {
    const name = `on-time-${newId()}`;
    proceed.open();
    const response = await app.inject({ method: 'POST', url: '/widgets', headers: { 'x-request-timeout-ms': '5000' }, payload: { name } });
    expect(response.statusCode).toBe(200);
    expect(await count(name)).toBe(1);
  });

  it('caps the caller’s budget at the service’s own request timeout, and uses that timeout without one', async () => {
    const capped = (await app.inject({ method: 'GET', url: '/deadline', headers: { 'x-request-timeout-ms': '999999999' } })).json();
    expect(capped.remaining).toBeLessThanOrEqual(5_000);
    const own = (await app.inject({ method: 'GET', url: '/deadline' })).json();
    expect(own.remaining).toBeGreaterThan(2_000);
    const garbage = (await app.inject({ method: 'GET', url: '/deadline', headers: { 'x-request-timeout-ms': '-5' } })).json();
    expect(garbage.remaining).toBeGreaterThan(2_000);
  });

  it('leaves work outside a request (jobs, consumers) without a deadline', async () => {
    const name = `background-${newId()}`;
    proceed.open();
    await database.db.transaction(async (tx) => {
      await tx.insert(fixtureSchema.widgets).values({ id: newId(), name });
    });
    expect(currentDeadline()).toBeUndefined();
    expect(await count(name)).toBe(1);
  });
});
