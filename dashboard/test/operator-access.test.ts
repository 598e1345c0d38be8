import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { path, startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

let dashboard: DashboardUnderTest;

beforeAll(async () => {
  dashboard = await startDashboard();
});

afterAll(async () => {
  await dashboard?.close();
});

const id = () => `task:notifications:${newId()}`;

/** Every operations route with a request it accepts (`GET /admin/live` is a stream: see services-panel.test.ts). */
const ROUTES: { method: string; url: () => string; body?: () => unknown; operatorStatus: number }[] = [
  { method: 'GET', url: () => '/admin/overview', operatorStatus: 200 },
  { method: 'GET', url: () => '/admin/history?minutes=5', operatorStatus: 200 },
  { method: 'GET', url: () => '/admin/dead-letters?kind=task', operatorStatus: 200 },
  { method: 'GET', url: () => `/admin/dead-letters/${path(id())}`, operatorStatus: 404 },
  { method: 'POST', url: () => `/admin/dead-letters/${path(id())}/redrive`, operatorStatus: 404 },
  { method: 'POST', url: () => '/admin/dead-letters/redrive', body: () => ({ ids: [id()] }), operatorStatus: 200 },
  { method: 'POST', url: () => '/admin/dead-letters/redrive', body: () => ({ kind: 'event' }), operatorStatus: 200 },
  {
    method: 'POST',
    url: () => `/admin/dead-letters/${path('task:notifications:x')}/discard`,
    body: () => ({ confirm: 'task:notifications:x' }),
    operatorStatus: 404,
  },
  { method: 'GET', url: () => '/admin/activity', operatorStatus: 200 },
  { method: 'GET', url: () => '/admin/live', operatorStatus: 0 },
];

describe('operations routes', () => {
  it.each(ROUTES.map((route) => [`${route.method} ${route.url().replace(/\/task%3A.*?(?=\/|$)/, '/:id')}`, route] as const))(
    '%s: 401 without a token, 403 auth.role_required for an ordinary user',
    async (_name, route) => {
      const anonymous = await dashboard.call(route.method, route.url(), { body: route.body?.() });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error.code).toBe('auth.missing_token');
      const invalid = await dashboard.call(route.method, route.url(), { token: await dashboard.tokens.foreignToken(newId()), body: route.body?.() });
      expect(invalid.status).toBe(401);
      const ordinary = await dashboard.call(route.method, route.url(), { token: dashboard.userToken, body: route.body?.() });
      expect(ordinary.status).toBe(403);
      expect(ordinary.body.error.code).toBe('auth.role_required');
    },
  );

  it.each(ROUTES.filter((route) => route.operatorStatus !== 0).map((route) => [`${route.method} ${route.url().replace(/\/task%3A.*?(?=\/|$)/, '/:id')}`, route] as const))(
    '%s: an operator gets through',
    async (_name, route) => {
      const answer = await dashboard.call(route.method, route.url(), { token: dashboard.operatorToken, body: route.body?.() });
      expect(answer.status, JSON.stringify(answer.body)).toBe(route.operatorStatus);
    },
  );

  it('the sign-in routes need no token, and the page is public', async () => {
    const signIn = await dashboard.call('POST', '/admin/session', { body: {} });
    expect(signIn.status).toBe(400);
    expect(signIn.body.error.code).toBe('validation_failed');
    const refresh = await dashboard.call('POST', '/admin/session/refresh', { body: {} });
    expect(refresh.status).toBe(400);
    const hint = await dashboard.app.inject({ method: 'GET', url: '/' });
    expect(hint.statusCode).toBe(200);
    expect(hint.headers['content-type']).toMatch(/^text\/plain/);
    expect(hint.body).toContain('/admin');
  });

  it('serves the built page from its folder when there is one', async () => {
    const webRoot = await mkdtemp(join(tmpdir(), 'dashboard-web-'));
    await writeFile(join(webRoot, 'index.html'), '<!doctype html><title>ops</title>');
    const withPage = await startDashboard({ webRoot });
    try {
      const page = await withPage.app.inject({ method: 'GET', url: '/' });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.body).toContain('<title>ops</title>');
      expect((await withPage.call('GET', '/admin/overview')).status).toBe(401);
    } finally {
      await withPage.close();
      await rm(webRoot, { recursive: true, force: true });
    }
  });
});
